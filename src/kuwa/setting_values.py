"""Setting values: a ``KUWA_*`` string turned into the field's type, and the rules a whole
:class:`~kuwa.settings.Settings` must satisfy. Both raise :class:`SettingsError` naming the
setting."""

from __future__ import annotations

import ipaddress
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kuwa.keys import valid_access_code

if TYPE_CHECKING:
    from kuwa.settings import Settings


class SettingsError(ValueError):
    """A ``KUWA_*`` variable or option has a bad name or value."""


def convert(name: str, raw: str, tp: Any) -> Any:
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional, tp = True, args[0]
        origin = typing.get_origin(tp)
    if optional and raw == "":
        return None
    try:
        if tp is bool:
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if tp is int:
            return int(raw)
        if tp is float:
            return float(raw)
        if tp is Path:
            return Path(raw)
        if origin is tuple:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        return raw
    except ValueError:
        raise SettingsError(
            f"{name}={raw!r} is not a valid {getattr(tp, '__name__', tp)}"
        ) from None


def check(s: Settings) -> None:
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
