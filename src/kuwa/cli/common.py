"""Helpers shared by the commands: settings from options + environment, logging set-up."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

from kuwa import logs
from kuwa.settings import PREFIX, Settings, SettingsError

T = TypeVar("T")


def option_envvars(command: click.Command) -> set[str]:
    """Every envvar any option of ``command`` (and its subcommands) reads."""
    names: set[str] = set()
    for param in command.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            names.add(envvar)
        elif envvar:
            names.update(envvar)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            names |= option_envvars(sub)
    return names


def build_settings(**overrides: Any) -> Settings:
    """Settings from ``KUWA_*`` variables with non-None option values on top."""
    ctx = click.get_current_context(silent=True)
    extra: frozenset[str] = frozenset()
    if ctx is not None:
        extra = frozenset(option_envvars(ctx.find_root().command))
    try:
        return Settings.from_env(allowed_extra=extra, **overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def settings_environment(settings: Settings) -> dict[str, str]:
    """``KUWA_*`` variables that rebuild ``settings`` in a child process."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value is None or value == f.default:
            continue
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = "1" if value else "0"
        out[PREFIX + f.name.upper()] = str(value)
    return out


def can_listen(host: str, port: int) -> OSError | None:
    """None if a server may listen on ``host:port`` now, else why not (binding as uvicorn does,
    with SO_REUSEADDR, so a port that only has closing connections counts as free)."""
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return OSError(errno.EADDRNOTAVAIL, f"unknown host {host!r} ({exc.strerror})")
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                return exc
    return None


def require_free_port(host: str, port: int) -> None:
    """Stop with a clear message when the gateway could not listen on ``host:port``: another
    program has it (a free port nearby is suggested), or it is not ours to take."""
    problem = can_listen(host, port)
    if problem is None:
        return
    if problem.errno == errno.EADDRINUSE:
        nearby = range(port + 1, min(port + 50, 65536))
        spare = next((p for p in nearby if can_listen(host, p) is None), None)
        other = str(spare) if spare else "PORT"
        raise click.ClickException(
            f"port {port} on {host} is taken: another program is listening there. Stop it, "
            f"or pick another port with --port {other} (or KUWA_PORT={other})."
        )
    raise click.ClickException(
        f"cannot listen on {host}:{port}: {problem.strerror or problem}. Pick another address "
        "or port with --host/--port (or KUWA_HOST/KUWA_PORT)."
    )


def setup_logging(settings: Settings, name: str) -> None:
    logs.setup_logging(settings.log_level, name)


def run_async(main: Coroutine[Any, Any, T], loop: str = "auto") -> T:
    """Run a process's main coroutine: on uvloop when installed (it is, with uvicorn) unless
    ``loop`` is ``asyncio``."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise click.UsageError(
                    "KUWA_EVENT_LOOP=uvloop, but uvloop is not installed"
                ) from None
        else:
            return uvloop.run(main)
    return asyncio.run(main)
