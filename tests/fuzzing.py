"""schemathesis over ``/openapi.json`` against a real stack: every operation, every check.

A gateway with two debug models (so the arena has a pair), an RQ worker and a mail server; a
signed-in administrator's session (cookie and ``x-csrftoken`` header) for the web app and a
user's API token for the API, sent on every request (the API ignores cookies and the pages
ignore tokens). schemathesis runs its phases (the documented examples, boundary values, random
data, and chains of calls that follow the data one call gives to the next) and checks every
response: no 5xx, a documented status and content type, a body and headers that match the
schema, invalid data refused, valid data accepted (the JSON APIs), a documented ``Allow`` on
405, authentication enforced. ``tests/fuzz/schemathesis.toml`` holds the settings and says
why each exception is there.

Two passes: the first covers every operation but the few that end the session or change the
whole server (``SESSION_ENDERS``); the second fuzzes those. ``tests/test_fuzz.py`` runs it in
CI with a fixed seed; ``make fuzz`` (``python -m tests.fuzzing``) runs longer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from tests.smtpserver import SmtpServer
from tests.stack import RedisServer, Stack
from tests.web import PASSWORD, SESSION_COOKIE, Browser, store_of

HERE = Path(__file__).parent / "fuzz"
CONFIG = HERE / "schemathesis.toml"
# Operations that sign the fuzzer out or change the whole server (sign out, decline the
# terms, delete the account, the system settings): fuzzed last, on their own.
SESSION_ENDERS = ("/logout", "/terms", "/profile/delete", "/manage/system")


@dataclass
class Target:
    """A running stack to fuzz and the credentials to send."""

    base_url: str
    env: dict[str, str]
    stack: Stack
    sign_in: Any = None
    admins: int = 0


@dataclass
class PassResult:
    name: str
    report: dict[str, Any]
    output: str
    seconds: float
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def test_cases(self) -> int:
        return int(self.report.get("test_cases", {}).get("generated", 0))

    @property
    def problems(self) -> list[str]:
        """What makes the pass fail: failures, errors, operations left untested."""
        out = [
            f"{f['code']} {f['title']}: {', '.join(f['operations'])}"
            for f in self.report.get("failures", [])
        ]
        out += [f"error {e['title']} ({e['count']})" for e in self.report.get("errors", [])]
        ops = self.report.get("operations", {})
        if ops.get("tested", 0) != ops.get("selected", -1):
            out.append(f"tested {ops.get('tested')} of {ops.get('selected')} operations")
        return out


@contextmanager
def fuzz_stack(folder: Path) -> Iterator[Target]:
    """The stack, its mail server and the credentials (see the module's docstring)."""
    server = RedisServer(folder / "redis")
    stack = Stack(folder, server)
    try:
        with SmtpServer() as smtp:
            stack.token = stack.create_user()
            stack.executor("echo", concurrency=64)
            stack.executor("reverse", transform="reverse")
            stack.spawn("worker", ["worker", "start"])
            stack.gateway(
                {
                    "KUWA_SMTP_HOST": smtp.host,
                    "KUWA_SMTP_PORT": str(smtp.port),
                    "KUWA_SMTP_SECURITY": "none",
                }
            )
            target = Target(stack.base_url, {}, stack)
            target.sign_in = lambda: _sign_in(target)
            target.sign_in()
            yield target
    finally:
        stack.stop()
        server.stop()


def _sign_in(target: Target) -> None:
    """A new administrator's session (the last pass may have changed the last one: the fuzzer
    edits users, itself included) and the API token, in the environment."""
    target.admins += 1
    email = f"fuzz-admin-{target.admins}@example.com"
    with store_of(target.stack) as store:
        store.accounts.create_user(
            email, "Fuzz Admin", PASSWORD, is_admin=True, email_verified=True
        )
    browser = Browser(target.base_url)
    try:
        r = browser.login(email)
        assert r.status_code == 303, r.text
        session = browser.http.cookies[SESSION_COOKIE]
        csrf = browser.csrf()
    finally:
        browser.close()
    target.env = {
        "KUWA_FUZZ_TOKEN": target.stack.token,
        "KUWA_FUZZ_SESSION": session,
        "KUWA_FUZZ_CSRF": csrf,
    }


def run_pass(
    target: Target,
    name: str,
    out: Path,
    *,
    max_examples: int,
    seed: int = 1,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    max_time: float | None = None,
) -> PassResult:
    """One ``schemathesis run`` over the document; its JSON report and output."""
    out.mkdir(parents=True, exist_ok=True)
    report = out / f"{name}.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{target.base_url}/openapi.json",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--report",
        "json,ndjson",
        "--report-json-path",
        str(report),
        "--report-ndjson-path",
        str(out / f"{name}.ndjson"),
        "--no-color",
    ]
    if max_time is not None:
        command += ["--max-time", str(max_time)]
    for path in include:
        command += ["--include-path", path]
    for path in exclude:
        command += ["--exclude-path", path]
    env = {**os.environ, **target.env, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE.parent.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    started = time.monotonic()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    (out / f"{name}.txt").write_text(output, encoding="utf-8")
    if not report.exists():
        raise RuntimeError(f"schemathesis wrote no report (exit {done.returncode}):\n{output}")
    return PassResult(name, json.loads(report.read_text()), output, seconds)


def fuzz(
    target: Target, out: Path, *, max_examples: int, seed: int = 1, max_time: float | None = None
) -> list[PassResult]:
    """Both passes (see the module's docstring)."""
    first = run_pass(
        target,
        "main",
        out,
        max_examples=max_examples,
        seed=seed,
        exclude=SESSION_ENDERS,
        max_time=max_time,
    )
    target.sign_in()
    last = run_pass(
        target,
        "session-enders",
        out,
        max_examples=max_examples,
        seed=seed,
        include=SESSION_ENDERS,
        max_time=max_time,
    )
    return [first, last]


def summary(results: list[PassResult]) -> str:
    lines = ["| pass | operations | test cases | seconds | failures |", "|---|---|---|---|---|"]
    for r in results:
        ops = r.report.get("operations", {})
        lines.append(
            f"| {r.name} | {ops.get('tested')} of {ops.get('selected')} | {r.test_cases} | "
            f"{r.seconds:.0f} | {len(r.problems)} |"
        )
    for r in results:
        for problem in r.problems:
            lines.append(f"- {r.name}: {problem}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-time", type=float, default=None, help="seconds per pass")
    parser.add_argument("--out", type=Path, default=Path("fuzz-report"))
    args = parser.parse_args()
    with TemporaryDirectory(prefix="kuwa-fuzz-") as tmp, fuzz_stack(Path(tmp)) as target:
        results = fuzz(
            target, args.out, max_examples=args.max_examples, seed=args.seed, max_time=args.max_time
        )
    print(summary(results))
    print(f"reports and output: {args.out}/")
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
