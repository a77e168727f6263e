"""``kuwa-cli up``: gateway, kernel, demo executors (and Redis, if none is given) at once."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import click

from kuwa import local_redis
from kuwa.cli import options
from kuwa.cli.common import build_settings, require_free_port
from kuwa.cli.supervisor import Supervisor
from kuwa.settings import Settings

DEMO_DELAY = "0.03"  # seconds per token: slow enough to watch the answers stream


@click.command("up")
@options.host
@options.port
@options.data_dir
@options.up_redis_url
@options.database_url
@options.log_level
@options.access_log
@click.option(
    "--demo-models",
    envvar="KUWA_DEMO_MODELS",
    show_envvar=True,
    default=None,
    help="Comma-separated access codes of demo debug executors ('' for none). "
    "[default: echo,reverse,upper]",
)
def command(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    redis_url: str | None,
    database_url: str | None,
    log_level: str | None,
    access_log: bool | None,
    demo_models: str | None,
) -> None:
    """Run everything on embedded defaults; a part that exits is started again; Ctrl-C stops
    it all."""
    settings = build_settings(
        host=host,
        port=port,
        data_dir=data_dir,
        redis_url=redis_url,
        database_url=database_url,
        log_level=log_level,
        access_log=access_log,
        demo_models=None
        if demo_models is None
        else tuple(p.strip() for p in demo_models.split(",") if p.strip()),
    )
    # Before creating anything: a server already on the port would answer the health check.
    require_free_port(settings.host, settings.port)
    if not settings.redis_url:
        _clear_leftover_redis(settings.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.load_secret_key()  # create it once, before the children race for it
    stack = Supervisor()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    pid_file = local_redis.owner_file(settings.data_dir)
    try:
        url = settings.redis_url or _start_redis(stack, settings.data_dir)
        pid_file.write_text(f"{os.getpid()}\n")
        settings = settings.replace(redis_url=url)
        _first_start(settings)
        env = _child_env(settings)
        _spawn(stack, "kernel", ["kernel", "start"], env)
        _spawn(stack, "worker", ["worker", "start"], env)
        for code in settings.demo_models:
            transform = code if code in {"echo", "reverse", "upper"} else "echo"
            _spawn(
                stack,
                f"executor {code}",
                [
                    "executor",
                    "start",
                    "--backend",
                    "debug",
                    "--access-code",
                    code,
                    "--debug-transform",
                    transform,
                    "--delay",
                    DEMO_DELAY,
                ],
                env,
            )
        _spawn(
            stack,
            "gateway",
            ["gateway", "start", "--host", settings.host, "--port", str(settings.port)],
            env,
        )
        base = f"http://{settings.host}:{settings.port}"
        if _wait_http(base + "/healthz", stack):
            click.secho(f"Kuwa is running at {base}/  (Ctrl-C to stop)", fg="green", err=True)
        stack.run()
    except KeyboardInterrupt:
        click.echo("\nstopping…", err=True)
    finally:
        stack.stop(names_last=(REDIS,))
        pid_file.unlink(missing_ok=True)


REDIS = "redis"


def _spawn(stack: Supervisor, name: str, args: list[str], env: dict[str, str]) -> None:
    stack.start(name, [sys.executable, "-m", "kuwa", *args], env)


def _start_redis(stack: Supervisor, data_dir: Path) -> str:
    """Start the private redis-server as a part of ``stack``; its URL once it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise click.ClickException(
            "redis-server was not found. Install it (Debian/Ubuntu: apt-get install "
            "redis-server; macOS: brew install redis) or pass --redis-url."
        )
    data_dir = data_dir.resolve()
    sock = local_redis.socket_path(data_dir)
    args = [
        binary,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir),
        "--logfile",
        str(data_dir / "redis.log"),
    ]
    if len(str(sock)) < local_redis.MAX_SOCKET_PATH:
        sock.unlink(missing_ok=True)
        args += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
        url = f"unix://{sock}"
    else:
        port = _free_port()
        args += ["--port", str(port), "--bind", "127.0.0.1"]
        url = f"redis://127.0.0.1:{port}/0"
    part = stack.start(REDIS, args)
    deadline = time.monotonic() + 10
    from redis import RedisError

    from kuwa.broker.connection import connect_sync

    while time.monotonic() < deadline:
        if part.proc.poll() is not None:
            raise click.ClickException(
                f"redis-server exited at start; see {data_dir / 'redis.log'}"
            )
        try:
            with connect_sync(url) as client:
                client.ping()
            click.echo(f"redis: started a private server ({url})", err=True)
            return url
        except RedisError:
            time.sleep(0.05)
    raise click.ClickException("redis-server did not answer within 10 seconds")


def _clear_leftover_redis(data_dir: Path) -> None:
    """A Redis answering on the data folder's socket: another ``up``'s (refused), or one an
    ``up`` that died left behind (shut down, and said so)."""
    running = local_redis.running_url(data_dir)
    if running is None:
        return
    owner = local_redis.owner(data_dir)
    if owner is None or owner.alive:
        raise click.ClickException(
            f"a Redis answers at {running}: a `kuwa-cli up` already runs on the data folder "
            f"{data_dir}"
            + (f" (pid {owner.pid})" if owner else " (or left its redis-server behind)")
            + ". Stop it, or give this one another --data-dir."
        )
    local_redis.shutdown(data_dir)
    click.echo(
        f"redis: stopped the redis-server left behind by a `kuwa-cli up` that is gone "
        f"(pid {owner.pid})",
        err=True,
    )


def _first_start(settings: Settings) -> None:
    """Create the admin account (and print its login and token) if there is none yet."""
    from kuwa.accounts import Accounts, close_database, open_database
    from kuwa.errors import KuwaError

    try:
        db = open_database(settings)  # migrates the schema first (KUWA_DB_AUTO_MIGRATE)
    except KuwaError as exc:
        raise click.ClickException(exc.message) from None
    try:
        accounts = Accounts(db, settings.load_secret_key())
        if accounts.find_user(settings.admin_email) is not None:
            return
        password = settings.admin_password or secrets.token_urlsafe(12)
        user = accounts.create_user(
            settings.admin_email, "Admin", password, is_admin=True, email_verified=True
        )
        token = accounts.ensure_token(user.id)
    finally:
        close_database(db)
    lines = [
        "First start: created the administrator account.",
        f"  login:     {settings.admin_email}",
        f"  password:  {password}",
        f"  API token: {token}",
        "This is shown once; 'kuwa-cli user token --email "
        f"{settings.admin_email}' prints the token again.",
    ]
    width = max(map(len, lines))
    click.echo("+" + "-" * (width + 2) + "+")
    for line in lines:
        click.echo(f"| {line.ljust(width)} |")
    click.echo("+" + "-" * (width + 2) + "+")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["KUWA_REDIS_URL"] = settings.effective_redis_url
    env["KUWA_DATA_DIR"] = str(settings.data_dir.resolve())
    env["KUWA_LOG_LEVEL"] = settings.log_level
    env["KUWA_ACCESS_LOG"] = "1" if settings.access_log else "0"
    if settings.database_url:
        env["KUWA_DATABASE_URL"] = settings.database_url
    env.pop("KUWA_DEMO_MODELS", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_http(url: str, stack: Supervisor, timeout: float = 60) -> bool:
    """Whether ``url`` answers 200 within ``timeout`` s, supervising the parts meanwhile."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.watch()  # a part that died at start is started again
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False
