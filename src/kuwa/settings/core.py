"""The one :class:`Settings` object: its groups of fields put together, how it is built
from ``KUWA_*`` variables and checked, and the values derived from it."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import os
import secrets
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kuwa import local_redis
from kuwa.keys import valid_access_code
from kuwa.redis_url import parse as parse_redis_url
from kuwa.settings.commands import CommandSettings
from kuwa.settings.deployment import DEFAULT_REDIS_URL, DeploymentSettings
from kuwa.settings.documents import DocumentSettings
from kuwa.settings.executor import ExecutorSettings
from kuwa.settings.jobs import JobSettings
from kuwa.settings.signin import SignInSettings
from kuwa.settings.values import SettingsError, convert

PREFIX = "KUWA_"


# The fields are the groups', in the order of docs/configuration.md: dataclasses take the
# last base's fields first, so the groups stand here from last to first.
@dataclass(frozen=True, slots=True)
class Settings(
    CommandSettings,
    ExecutorSettings,
    JobSettings,
    DocumentSettings,
    SignInSettings,
    DeploymentSettings,
):
    """Every setting of every process, read once at start and never changed."""

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        allowed_extra: frozenset[str] = frozenset(),
        **overrides: Any,
    ) -> Settings:
        """Build settings from ``KUWA_*`` variables, then apply non-None ``overrides``.

        ``allowed_extra`` names variables that belong to command options, not to settings.
        """
        env = os.environ if environ is None else environ
        known = {PREFIX + f.name.upper(): f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, raw in env.items():
            if not name.startswith(PREFIX) or name in allowed_extra:
                continue
            f = known.get(name)
            if f is None:
                raise SettingsError(f"unknown setting {name}; see docs/configuration.md")
            values[f.name] = convert(name, raw, _field_type(f))
        for key, value in overrides.items():
            if key not in {f.name for f in dataclasses.fields(cls)}:
                raise SettingsError(f"unknown setting {key!r}")
            if value is not None:
                values[key] = value
        settings = cls(**values)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def validate(self) -> None:
        """Raise :class:`SettingsError` naming the first setting whose value is out of range."""
        _check(self)

    # --- derived values -----------------------------------------------------------------
    @property
    def effective_redis_url(self) -> str:
        """``redis_url``; unset: the Redis of a ``kuwa-cli up`` running on ``data_dir``, else
        ``DEFAULT_REDIS_URL``. Looked for once per process and data folder, and logged."""
        return self.redis_url or _unset_redis_url(str(self.data_dir.resolve()))

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'kuwa.db').resolve()}"

    def load_secret_key(self) -> str:
        """The configured key, else the one in DATA_DIR/secret.key (created on first use)."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        return key


def _check(s: Settings) -> None:
    """Raise :class:`SettingsError` naming the first setting whose value is out of range."""
    if not 0 < s.port < 65536:
        raise SettingsError(f"port must be 1-65535, not {s.port}")
    for name in ("kernel_metrics_port", "executor_metrics_port"):
        value = getattr(s, name)
        if value is not None and not 0 < value < 65536:
            raise SettingsError(f"{name} must be 1-65535, not {value}")
    for name in (
        "max_body_bytes",
        "max_queue",
        "max_concurrency",
        "transcript_max_chunks",
        "workers",
        "fair_window",
        "import_max_rows",
        "import_max_bytes",
        "joblog_max_entries",
        "usage_retention_days",
        "files_max_bytes",
        "files_max_pages",
        "files_passages",
    ):
        if getattr(s, name) < 1:
            raise SettingsError(f"{name} must be at least 1")
    if not 0 < s.timeseries_interval <= s.timeseries_window:
        raise SettingsError("timeseries_interval must be > 0 and <= timeseries_window")
    if s.event_loop not in {"auto", "uvloop", "asyncio"}:
        raise SettingsError(f"event_loop must be auto, uvloop or asyncio, not {s.event_loop}")
    if s.user_max_jobs < 0 or s.user_requests_per_minute < 0:
        raise SettingsError("user_max_jobs and user_requests_per_minute must be >= 0")
    if s.token_cache_seconds < 0 or s.model_cache_seconds < 0:
        raise SettingsError("token_cache_seconds and model_cache_seconds must be >= 0")
    if s.upstream_timeout <= 0:
        raise SettingsError("upstream_timeout must be > 0")
    if s.files_user_quota_bytes < 0 or s.files_user_quota_files < 0:
        raise SettingsError("files_user_quota_bytes and files_user_quota_files must be >= 0")
    if s.files_extract_timeout <= 0 or s.embedding_timeout <= 0:
        raise SettingsError("files_extract_timeout and embedding_timeout must be > 0")
    if s.embedding_model and not s.embedding_url and not valid_access_code(s.embedding_model):
        raise SettingsError(
            "embedding_model (without embedding_url) must be the access code of an embedding "
            f"model Kuwa serves, not {s.embedding_model!r}"
        )
    if s.redis_url is not None:
        try:
            parse_redis_url(s.redis_url)
        except ValueError as exc:
            raise SettingsError(f"redis_url: {exc}") from None
    if not 1 <= s.finished_job_ttl <= s.transcript_ttl:
        raise SettingsError("finished_job_ttl must be at least 1 and at most transcript_ttl")
    if s.heartbeat_ttl <= 0 or s.coalesce_ms < 0 or s.debug_delay < 0:
        raise SettingsError("heartbeat_ttl must be > 0; coalesce_ms, debug_delay >= 0")
    if s.smtp_security not in {"starttls", "ssl", "none"}:
        raise SettingsError(f"smtp_security must be starttls, ssl or none, not {s.smtp_security}")
    if s.oidc_provider not in {None, "google", "microsoft", "github", "custom"}:
        raise SettingsError(
            f"oidc_provider must be google, microsoft, github or custom, not {s.oidc_provider}"
        )
    if s.oidc_provider == "custom" and not s.oidc_discovery_url:
        raise SettingsError("oidc_provider custom needs oidc_discovery_url")
    if s.oidc_provider and not s.oidc_client_id:
        raise SettingsError("oidc_provider needs oidc_client_id (and usually a secret)")
    for name in ("trusted_proxies", "ip_allowlist"):
        for value in getattr(s, name):
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise SettingsError(
                    f"{name}: {value!r} is not an IP address or network like 10.0.0.0/8"
                ) from None
    if min(s.login_max_failures, s.login_ip_max_failures, s.login_window) < 1:
        raise SettingsError("login_max_failures, login_ip_max_failures, login_window >= 1")
    if s.log_level.lower() not in {"debug", "info", "warning", "error"}:
        raise SettingsError(f"log_level must be debug, info, warning or error, not {s.log_level}")


@functools.cache
def _unset_redis_url(data_dir: str) -> str:
    log = logging.getLogger("kuwa.settings")
    url = local_redis.running_url(Path(data_dir))
    if url is not None:
        log.info("redis: KUWA_REDIS_URL is unset; using the Redis of `kuwa-cli up` (%s)", url)
        return url
    log.info(
        "redis: KUWA_REDIS_URL is unset and no `kuwa-cli up` runs on %s; using %s",
        data_dir,
        DEFAULT_REDIS_URL,
    )
    return DEFAULT_REDIS_URL


def _field_type(f: dataclasses.Field[Any]) -> Any:
    hints = typing.get_type_hints(Settings)
    return hints[f.name]


def setting_names() -> list[str]:
    """Every ``KUWA_*`` variable a Settings field reads, for docs and tests."""
    return [PREFIX + f.name.upper() for f in dataclasses.fields(Settings)]


def setting_docs() -> dict[str, str]:
    return {PREFIX + f.name.upper(): f.metadata["doc"] for f in dataclasses.fields(Settings)}
