"""What a stress run does: the target, the models, the load shape and its hard limits.

A stress run sends real load, so it may only target this machine (loopback addresses and
``localhost``) or the deployment's own gateway: the host of ``KUWA_PUBLIC_URL`` or one listed
in ``KUWA_STRESS_TARGETS``. :meth:`StressConfig.validate` refuses everything else, and every
number has a hard cap, so a typo cannot turn the tool against a third party or run for days.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kuwa.errors import InvalidRequestError
from kuwa.settings import PREFIX, Settings, SettingsError

MAX_CONCURRENCY = 1024
MAX_REQUESTS = 100_000
MAX_DURATION = 3600.0
"""Seconds: one hour."""
MAX_RATE = 1000.0
"""Requests per second."""
MAX_TIMEOUT = 3600.0
MAX_TOKENS = 1_000_000
MAX_MODELS = 64
MAX_PROMPTS = 100_000
MAX_PROMPT_CHARS = 1_000_000
MAX_PROMPT_FILE_BYTES = 64 * 1024 * 1024

BUILTIN_PROMPTS: tuple[str, ...] = (
    "Explain in two sentences why the sky is blue.",
    "Write a haiku about a lighthouse keeper who loves the fog.",
    "List three practical tips for keeping a small vegetable garden healthy in summer.",
    "Summarize the plot of a detective story set on a night train in one paragraph.",
    "What are the main differences between a list and a tuple in Python? Be brief.",
    "Translate 'good morning, how did you sleep?' into French, Spanish and Japanese.",
    "Describe the smell of rain on a hot city street to someone who has never smelled it.",
    "Give a short, friendly reminder to drink water during a long day of work.",
)
"""Short prompts used when a run names none (each answered in a few dozen tokens)."""

ROLES = frozenset({"system", "user", "assistant"})
TARGET_VARIABLES = (PREFIX + "PUBLIC_URL", PREFIX + "STRESS_TARGETS")


@dataclass(frozen=True)
class StressConfig:
    """One stress run.

    ``url`` is the gateway's base URL (``…/v1`` is accepted too); requests go to
    ``URL/v1/chat/completions``, streaming, with ``token`` as the Bearer token (it is never
    saved in results). Request *i* asks ``models[i % len(models)]`` with
    ``prompts[i % len(prompts)]`` (the built-in set when empty). A prompt is one user
    message, or a JSON array of ``{"role", "content"}`` objects (a whole conversation; what
    a JSONL ``messages`` line of a prompt file becomes).

    Load shape: without ``rate``, ``concurrency`` workers each send their next request as
    soon as the last one ended (closed loop); with ``rate``, requests arrive as a Poisson
    process of ``rate`` per second, at most ``concurrency`` in flight (later arrivals wait).
    The run sends at most ``requests`` requests and starts none after ``duration`` seconds;
    requests in flight then finish (each within ``timeout`` seconds).
    """

    url: str
    token: str
    models: tuple[str, ...]
    concurrency: int = 8
    requests: int = 100
    rate: float | None = None
    duration: float | None = None
    max_tokens: int | None = None
    prompts: tuple[str, ...] = ()
    timeout: float = 120.0

    # --- derived values -------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        base = base.removesuffix("/v1")
        return base + "/v1/chat/completions"

    @property
    def prompt_set(self) -> tuple[str, ...]:
        return self.prompts or BUILTIN_PROMPTS

    def to_json(self) -> dict[str, Any]:
        """Everything but the token (results are saved and shown; a token is a secret)."""
        return {
            "url": self.url,
            "models": list(self.models),
            "concurrency": self.concurrency,
            "requests": self.requests,
            "rate": self.rate,
            "duration": self.duration,
            "max_tokens": self.max_tokens,
            "prompt_count": len(self.prompt_set),
            "builtin_prompts": not self.prompts,
            "timeout": self.timeout,
        }

    # --- checks ---------------------------------------------------------------------------
    def validate(self, allowed_hosts: Iterable[str] = ()) -> None:
        """Raise :class:`InvalidRequestError` (``param`` names the field) for a bad value."""
        _check_url(self.url, allowed_hosts)
        if not self.token or not self.token.strip():
            raise _bad("token", "a token is required (kuwa-cli user token, or the profile page)")
        if not self.models:
            raise _bad("models", "give at least one model (access code)")
        if len(self.models) > MAX_MODELS:
            raise _bad("models", f"at most {MAX_MODELS} models, not {len(self.models)}")
        for i, model in enumerate(self.models):
            if not isinstance(model, str) or not model.strip():
                raise _bad(f"models[{i}]", "a model must be a non-empty access code")
        _check_int("concurrency", self.concurrency, 1, MAX_CONCURRENCY)
        _check_int("requests", self.requests, 1, MAX_REQUESTS)
        if self.max_tokens is not None:
            _check_int("max_tokens", self.max_tokens, 1, MAX_TOKENS)
        if self.rate is not None:
            _check_number("rate", self.rate, MAX_RATE, "requests per second")
        if self.duration is not None:
            _check_number("duration", self.duration, MAX_DURATION, "seconds")
        _check_number("timeout", self.timeout, MAX_TIMEOUT, "seconds")
        if len(self.prompts) > MAX_PROMPTS:
            raise _bad("prompts", f"at most {MAX_PROMPTS} prompts, not {len(self.prompts)}")
        for i, prompt in enumerate(self.prompts):
            if not isinstance(prompt, str) or not prompt.strip():
                raise _bad(f"prompts[{i}]", "a prompt must be non-empty text")
            if len(prompt) > MAX_PROMPT_CHARS:
                raise _bad(f"prompts[{i}]", f"a prompt may have at most {MAX_PROMPT_CHARS} chars")
            if prompt.startswith("["):
                _conversation(prompt, f"prompts[{i}]")


def _bad(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{param}: {message}", param=param)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _bad(name, f"must be a whole number from {low} to {high}, not {value!r}")


def _check_number(name: str, value: object, high: float, unit: str) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or not 0 < float(value) <= high:  # type: ignore[arg-type]
        raise _bad(name, f"must be more than 0 and at most {high:g} {unit}, not {value!r}")


# --- targets ----------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """``localhost`` (and ``*.localhost``) or a loopback address (127.0.0.0/8, ::1)."""
    host = host.lower().strip("[]").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(entry: str) -> str:
    """The host named by an allow-list entry: a host name, an address or a URL."""
    entry = entry.strip()
    if "://" in entry:
        return httpx.URL(entry).host.lower()
    try:  # a bare IPv6 address
        return str(ipaddress.ip_address(entry.strip("[]")))
    except ValueError:
        pass
    return httpx.URL("//" + entry).host.lower()  # drops a :port


def _check_url(url: str, allowed_hosts: Iterable[str]) -> None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise _bad("url", f"{url!r} is not a URL") from None
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise _bad("url", f"{url!r} must be an http:// or https:// URL with a host")
    host = parsed.host.lower()
    if is_loopback(host):
        return
    try:
        allowed = {_host_of(h) for h in allowed_hosts if h and h.strip()}
    except httpx.InvalidURL as exc:
        raise _bad("url", f"a configured stress target is not a host or URL: {exc}") from None
    if host.strip("[]") in {a.strip("[]") for a in allowed}:
        return
    raise InvalidRequestError(
        f"url: refusing to send load to {host}: a stress run may only target this machine "
        "(localhost, 127.0.0.1, ::1), the host of KUWA_PUBLIC_URL, or a host listed in "
        "KUWA_STRESS_TARGETS",
        param="url",
        code="target_not_allowed",
    )


def configured_targets(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The hosts this deployment allows besides loopback: ``KUWA_PUBLIC_URL``'s host and
    ``KUWA_STRESS_TARGETS`` (read from the environment, checked like any setting)."""
    env = os.environ if environ is None else environ
    picked = {name: env[name] for name in TARGET_VARIABLES if name in env}
    try:
        settings = Settings.from_env(picked)
    except SettingsError as exc:
        raise InvalidRequestError(str(exc), param="url") from None
    return targets_of(settings)


def targets_of(settings: Settings) -> tuple[str, ...]:
    """The allowed stress targets ``settings`` name (pass to :meth:`StressConfig.validate`)."""
    out = list(settings.stress_targets)
    if settings.public_url:
        out.append(settings.public_url)
    return tuple(out)


# --- prompts ----------------------------------------------------------------------------------
def _conversation(text: str, where: str) -> list[dict[str, str]] | None:
    """A prompt that is a JSON array of messages, checked; None when it is plain text."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
        return None  # text that happens to be JSON (e.g. "[1, 2]") is a plain prompt
    return _messages(value, where)


def _messages(value: object, where: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise _bad("prompts", f"{where}: messages must be a non-empty list")
    out = []
    for m in value:
        if (
            not isinstance(m, dict)
            or m.get("role") not in ROLES
            or not isinstance(m.get("content"), str)
        ):
            raise _bad(
                "prompts",
                f"{where}: each message needs a role (system, user or assistant) and a "
                "string content",
            )
        out.append({"role": m["role"], "content": m["content"]})
    return out


def messages_of(prompt: str) -> list[dict[str, str]]:
    """The ``messages`` one prompt sends."""
    conversation = _conversation(prompt, "prompt") if prompt.startswith("[") else None
    return conversation or [{"role": "user", "content": prompt}]


def load_prompts(path: Path) -> tuple[str, ...]:
    """Prompts from a file: one per line (blank lines skipped), or, when the first line is a
    JSON object, JSONL with a ``prompt`` string or a ``messages`` list on every line."""
    try:
        if path.stat().st_size > MAX_PROMPT_FILE_BYTES:
            raise _bad("prompts", f"{path} is larger than {MAX_PROMPT_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad("prompts", f"cannot read {path}: {exc}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise _bad("prompts", f"{path} has no prompts")
    if not _is_json_object(lines[0][1]):
        return tuple(line for _, line in lines)
    prompts = []
    for number, line in lines:
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except ValueError:
            raise _bad("prompts", f"{where} is not JSON (the file is JSONL)") from None
        if not isinstance(row, dict):
            raise _bad("prompts", f"{where} is not a JSON object")
        if isinstance(row.get("prompt"), str) and row["prompt"].strip():
            prompts.append(row["prompt"])
        elif "messages" in row:
            messages = _messages(row["messages"], where)
            prompts.append(json.dumps(messages, ensure_ascii=False))
        else:
            raise _bad("prompts", f'{where} has neither a "prompt" string nor "messages"')
    return tuple(prompts)


def _is_json_object(line: str) -> bool:
    if not line.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
