"""Settings of a deployment: where its data lives and how its gateway serves."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kuwa.settings.values import doc

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class DeploymentSettings:
    """Folders, Redis, database and secret key; the gateway, its limits and its metrics."""

    __slots__ = ()  # Settings holds the fields in slots of its own
    # --- where things live -------------------------------------------------------------
    data_dir: Path = field(
        default=Path("kuwa-data"),
        metadata=doc("Folder for the SQLite database, the secret key and the embedded Redis."),
    )
    redis_url: str | None = field(
        default=None,
        metadata=doc(
            "Redis to use, e.g. redis://host:6379/0, unix:///path/redis.sock, or a primary "
            "watched by Sentinels, redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]"
            "/SERVICE[/DB] (PASSWORD is the Redis servers'; ?sentinel_password=... the "
            "Sentinels'; rediss+sentinel:// for TLS), which every process follows through a "
            "failover (docs/operations.md). Unset: "
            "`kuwa-cli up` starts a private Redis in the data folder; other commands use that "
            "Redis while an `up` runs on their data folder (DATA_DIR/redis.sock answers), "
            f"else {DEFAULT_REDIS_URL}."
        ),
    )
    database_url: str | None = field(
        default=None,
        metadata=doc(
            "Database URL (sqlite:///path.db or postgresql://user:pw@host/db). "
            "Unset: sqlite in the data folder (kuwa.db)."
        ),
    )
    db_auto_migrate: bool = field(
        default=True,
        metadata=doc(
            "Apply pending schema migrations when a process opens the database (under a lock, "
            "so processes starting at once are safe). Off: a process whose database is behind "
            "refuses to start and says to run `kuwa-cli db migrate` (deployments that migrate "
            "in a step of their own)."
        ),
    )
    secret_key: str | None = field(
        default=None,
        repr=False,
        metadata=doc(
            "Key that encrypts secrets at rest (API tokens). Unset: generated once into "
            "DATA_DIR/secret.key. Every process sharing a database needs the same key."
        ),
    )
    # --- gateway ------------------------------------------------------------------------
    host: str = field(default="127.0.0.1", metadata=doc("Address the gateway listens on."))
    port: int = field(default=8000, metadata=doc("Port the gateway listens on."))
    workers: int = field(
        default=1, metadata=doc("Gateway worker processes (each with its own event loop).")
    )
    max_body_bytes: int = field(
        default=2 * 1024 * 1024,
        metadata=doc("Largest accepted request body in bytes; larger bodies get 413."),
    )
    max_queue: int = field(
        default=256,
        metadata=doc(
            "Most jobs per access code that wait for an executor slot (beyond the free slots "
            "of the live executors, which take jobs at once); beyond it requests get 429."
        ),
    )
    fair_window: int = field(
        default=8,
        metadata=doc(
            "Jobs per access code that may wait in line directly beyond the live executors' "
            "free slots; beyond them jobs wait in per-user backlogs and users take turns "
            "(round-robin)."
        ),
    )
    pool: Path | None = field(
        default=None,
        metadata=doc(
            "Kernel: pool file (TOML/YAML) of models whose executors the leader kernel starts "
            "and stops on this node from the queue (see docs/operations.md)."
        ),
    )
    user_max_jobs: int = field(
        default=0,
        metadata=doc("Answers one user may have running at once, all models (0: no limit)."),
    )
    user_requests_per_minute: int = field(
        default=0,
        metadata=doc("Chat requests one user may send per clock minute (0: no limit)."),
    )
    queue_timeout: float = field(
        default=240.0,
        metadata=doc(
            "Seconds a job may wait for a free executor before the kernel fails it "
            "(queue_timeout error)."
        ),
    )
    stream_idle_timeout: float = field(
        default=300.0,
        metadata=doc("Seconds a stream may go without any chunk before the gateway fails it."),
    )
    import_max_rows: int = field(
        default=10_000,
        metadata=doc("Most rows (prompts and answers) one imported chat file may have."),
    )
    import_max_bytes: int = field(
        default=50 * 1024 * 1024,
        metadata=doc("Largest chat file an import accepts, in bytes (kept on disk, not memory)."),
    )
    auto_register_models: bool = field(
        default=True,
        metadata=doc(
            "Add an access code that an executor serves to the model catalog on first sight "
            "(open to every group); off: only models an admin adds can be used."
        ),
    )
    token_cache_seconds: float = field(
        default=10.0,
        metadata=doc("Seconds a verified API token is cached in a gateway process."),
    )
    model_cache_seconds: float = field(
        default=5.0,
        metadata=doc(
            "Seconds a gateway process keeps the model catalog and the groups' model "
            "permissions before reading them again; a change made through that process "
            "applies at once."
        ),
    )
    log_level: str = field(default="info", metadata=doc("debug, info, warning or error."))
    access_log: bool = field(
        default=False,
        metadata=doc(
            "Gateway: log every HTTP request at INFO (uvicorn's access log); off: only what "
            "goes wrong is logged."
        ),
    )
    metrics_token: str | None = field(
        default=None,
        repr=False,
        metadata=doc(
            "Bearer token GET /metrics requires, on gateways, the kernel and executors "
            "(unset: open; restrict it at the proxy or firewall)."
        ),
    )
    kernel_metrics_port: int | None = field(
        default=None,
        metadata=doc("Port of the kernel's GET /metrics for Prometheus (unset: none)."),
    )
    executor_metrics_port: int | None = field(
        default=None,
        metadata=doc(
            "Port of an executor's GET /metrics for Prometheus (unset: none); each executor "
            "on one host needs its own."
        ),
    )
    metrics_host: str = field(
        default="0.0.0.0",
        metadata=doc("Address the kernel's and executors' /metrics servers listen on."),
    )
    event_loop: str = field(
        default="auto",
        metadata=doc(
            "Executor and kernel event loop: auto (uvloop when installed), uvloop, asyncio."
        ),
    )
