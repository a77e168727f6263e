from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import redis

from kuwa.settings import Settings, SettingsError, setting_names
from tests.stack import wait_until


def test_defaults(tmp_path: Path) -> None:
    s = Settings.from_env({})
    assert s.port == 8000
    assert s.host == "127.0.0.1"
    assert s.data_dir == Path("kuwa-data")
    # (In a folder without a running `kuwa-cli up`: see the test below.)
    assert s.replace(data_dir=tmp_path).effective_redis_url == "redis://127.0.0.1:6379/0"
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.effective_database_url.endswith("kuwa-data/kuwa.db")


def test_environment_is_typed() -> None:
    s = Settings.from_env(
        {
            "KUWA_PORT": "9001",
            "KUWA_COALESCE_MS": "1.5",
            "KUWA_ACCESS_CODE": "a, b,,c",
            "KUWA_DATA_DIR": "/tmp/x",
            "KUWA_REDIS_URL": "unix:///tmp/r.sock",
            "KUWA_SECRET_KEY": "",
            "PATH": "/usr/bin",
        }
    )
    assert s.port == 9001
    assert s.coalesce_ms == 1.5
    assert s.access_code == ("a", "b", "c")
    assert s.data_dir == Path("/tmp/x")
    assert s.redis_url == "unix:///tmp/r.sock"
    assert s.secret_key is None


def test_unknown_variable_is_rejected() -> None:
    with pytest.raises(SettingsError, match="KUWA_PROT"):
        Settings.from_env({"KUWA_PROT": "1"})


def test_allowed_extra_variables_pass() -> None:
    s = Settings.from_env({"KUWA_BURST": "1"}, allowed_extra=frozenset({"KUWA_BURST"}))
    assert s.port == 8000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KUWA_PORT", "eighty"),
        ("KUWA_PORT", "0"),
        ("KUWA_MAX_QUEUE", "0"),
        ("KUWA_LOG_LEVEL", "loud"),
        ("KUWA_MODEL_CACHE_SECONDS", "-1"),
    ],
)
def test_bad_values_are_rejected(name: str, value: str) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({name: value})


def test_overrides_win_over_environment() -> None:
    s = Settings.from_env({"KUWA_PORT": "9001"}, port=9002, host=None)
    assert s.port == 9002
    assert s.host == "127.0.0.1"


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


def test_secret_key_is_created_once_and_private(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data")
    key = s.load_secret_key()
    assert len(key) >= 32
    assert s.load_secret_key() == key
    assert (tmp_path / "data" / "secret.key").stat().st_mode & 0o077 == 0
    assert Settings(data_dir=tmp_path, secret_key="given").load_secret_key() == "given"


def test_every_setting_has_a_kuwa_name() -> None:
    names = setting_names()
    assert all(n.startswith("KUWA_") and n.isupper() for n in names)
    assert len(names) == len(set(names))


def test_unset_redis_url_finds_the_redis_of_up_in_the_data_folder(tmp_path: Path) -> None:
    """An executor started beside `kuwa-cli up` once joined redis://127.0.0.1:6379 and served
    nobody: without KUWA_REDIS_URL, a Redis answering on DATA_DIR/redis.sock (where up starts
    its own) is the one to use; a socket file nobody answers on is not."""
    stale = tmp_path / "stale"
    stale.mkdir()
    with socket.socket(socket.AF_UNIX) as left_behind:
        left_behind.bind(str(stale / "redis.sock"))  # a file, but nobody listens
    assert Settings(data_dir=stale).effective_redis_url == "redis://127.0.0.1:6379/0"

    data = tmp_path / "data"
    data.mkdir()
    sock = data / "redis.sock"
    binary = shutil.which("redis-server")
    assert binary, "redis-server must be installed"
    server = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--dir", str(data)],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(unix_socket_path=str(sock))

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(answers, 10, "redis-server")
        client.close()
        assert Settings(data_dir=data).effective_redis_url == f"unix://{sock}"
        given = Settings(data_dir=data, redis_url="redis://elsewhere:6379/0")
        assert given.effective_redis_url == "redis://elsewhere:6379/0"  # the variable wins
    finally:
        server.terminate()
        server.wait(10)
