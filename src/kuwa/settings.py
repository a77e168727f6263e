"""One frozen, typed settings object built from ``KUWA_*`` environment variables.

Every field is documented in ``docs/configuration.md`` (a test keeps the two in step).
Command-line options override the environment; unknown ``KUWA_*`` names are rejected so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import os
import secrets
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kuwa import local_redis
from kuwa.keys import valid_access_code
from kuwa.redis_url import parse as parse_redis_url
from kuwa.setting_values import SettingsError, convert

PREFIX = "KUWA_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
__all__ = [
    "DEFAULT_REDIS_URL",
    "PREFIX",
    "Settings",
    "SettingsError",
    "setting_docs",
    "setting_names",
]


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True, slots=True)
class Settings:
    # --- where things live -------------------------------------------------------------
    data_dir: Path = field(
        default=Path("kuwa-data"),
        metadata=_doc("Folder for the SQLite database, the secret key and the embedded Redis."),
    )
    redis_url: str | None = field(
        default=None,
        metadata=_doc(
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
        metadata=_doc(
            "Database URL (sqlite:///path.db or postgresql://user:pw@host/db). "
            "Unset: sqlite in the data folder (kuwa.db)."
        ),
    )
    db_auto_migrate: bool = field(
        default=True,
        metadata=_doc(
            "Apply pending schema migrations when a process opens the database (under a lock, "
            "so processes starting at once are safe). Off: a process whose database is behind "
            "refuses to start and says to run `kuwa-cli db migrate` (deployments that migrate "
            "in a step of their own)."
        ),
    )
    secret_key: str | None = field(
        default=None,
        repr=False,
        metadata=_doc(
            "Key that encrypts secrets at rest (API tokens). Unset: generated once into "
            "DATA_DIR/secret.key. Every process sharing a database needs the same key."
        ),
    )
    # --- gateway ------------------------------------------------------------------------
    host: str = field(default="127.0.0.1", metadata=_doc("Address the gateway listens on."))
    port: int = field(default=8000, metadata=_doc("Port the gateway listens on."))
    workers: int = field(
        default=1, metadata=_doc("Gateway worker processes (each with its own event loop).")
    )
    max_body_bytes: int = field(
        default=2 * 1024 * 1024,
        metadata=_doc("Largest accepted request body in bytes; larger bodies get 413."),
    )
    max_queue: int = field(
        default=256,
        metadata=_doc(
            "Most jobs per access code that wait for an executor slot (beyond the free slots "
            "of the live executors, which take jobs at once); beyond it requests get 429."
        ),
    )
    fair_window: int = field(
        default=8,
        metadata=_doc(
            "Jobs per access code that may wait in line directly beyond the live executors' "
            "free slots; beyond them jobs wait in per-user backlogs and users take turns "
            "(round-robin)."
        ),
    )
    pool: Path | None = field(
        default=None,
        metadata=_doc(
            "Kernel: pool file (TOML/YAML) of models whose executors the leader kernel starts "
            "and stops on this node from the queue (see docs/operations.md)."
        ),
    )
    user_max_jobs: int = field(
        default=0,
        metadata=_doc("Answers one user may have running at once, all models (0: no limit)."),
    )
    user_requests_per_minute: int = field(
        default=0,
        metadata=_doc("Chat requests one user may send per clock minute (0: no limit)."),
    )
    queue_timeout: float = field(
        default=240.0,
        metadata=_doc(
            "Seconds a job may wait for a free executor before the kernel fails it "
            "(queue_timeout error)."
        ),
    )
    stream_idle_timeout: float = field(
        default=300.0,
        metadata=_doc("Seconds a stream may go without any chunk before the gateway fails it."),
    )
    import_max_rows: int = field(
        default=10_000,
        metadata=_doc("Most rows (prompts and answers) one imported chat file may have."),
    )
    import_max_bytes: int = field(
        default=50 * 1024 * 1024,
        metadata=_doc("Largest chat file an import accepts, in bytes (kept on disk, not memory)."),
    )
    auto_register_models: bool = field(
        default=True,
        metadata=_doc(
            "Add an access code that an executor serves to the model catalog on first sight "
            "(open to every group); off: only models an admin adds can be used."
        ),
    )
    token_cache_seconds: float = field(
        default=10.0,
        metadata=_doc("Seconds a verified API token is cached in a gateway process."),
    )
    log_level: str = field(default="info", metadata=_doc("debug, info, warning or error."))
    access_log: bool = field(
        default=False,
        metadata=_doc(
            "Gateway: log every HTTP request at INFO (uvicorn's access log); off: only what "
            "goes wrong is logged."
        ),
    )
    metrics_token: str | None = field(
        default=None,
        repr=False,
        metadata=_doc(
            "Bearer token GET /metrics requires, on gateways, the kernel and executors "
            "(unset: open; restrict it at the proxy or firewall)."
        ),
    )
    kernel_metrics_port: int | None = field(
        default=None,
        metadata=_doc("Port of the kernel's GET /metrics for Prometheus (unset: none)."),
    )
    executor_metrics_port: int | None = field(
        default=None,
        metadata=_doc(
            "Port of an executor's GET /metrics for Prometheus (unset: none); each executor "
            "on one host needs its own."
        ),
    )
    metrics_host: str = field(
        default="0.0.0.0",
        metadata=_doc("Address the kernel's and executors' /metrics servers listen on."),
    )
    event_loop: str = field(
        default="auto",
        metadata=_doc(
            "Executor and kernel event loop: auto (uvloop when installed), uvloop, asyncio."
        ),
    )
    # --- web sign-in and security --------------------------------------------------------
    public_url: str | None = field(
        default=None,
        metadata=_doc(
            "Address people reach Kuwa at, e.g. https://kuwa.example.org, for links in mail "
            "and OIDC redirects (default: the address of the request)."
        ),
    )
    trusted_proxies: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Proxy addresses (IPs or CIDRs, comma-separated) whose X-Forwarded-For/-Proto "
            "headers are trusted; empty: those headers are ignored."
        ),
    )
    ip_allowlist: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Client addresses (IPs or CIDRs, comma-separated) allowed to use the gateway; "
            "empty: everyone. /healthz stays open."
        ),
    )
    session_max_age: int = field(
        default=14 * 24 * 3600, metadata=_doc("Seconds a web sign-in lasts.")
    )
    login_max_failures: int = field(
        default=5,
        metadata=_doc("Failed sign-ins per account within login_window before it is throttled."),
    )
    login_ip_max_failures: int = field(
        default=30,
        metadata=_doc("Failed sign-ins per client address within login_window before throttling."),
    )
    login_window: int = field(
        default=900, metadata=_doc("Seconds over which failed sign-ins are counted.")
    )
    # --- mail ---------------------------------------------------------------------------
    smtp_host: str | None = field(
        default=None,
        metadata=_doc(
            "SMTP server for verification and password-reset mail; unset: no mail is sent "
            "(the pages say so)."
        ),
    )
    smtp_port: int = field(default=587, metadata=_doc("SMTP server port."))
    smtp_security: str = field(
        default="starttls", metadata=_doc("SMTP transport security: starttls, ssl or none.")
    )
    smtp_username: str | None = field(default=None, metadata=_doc("SMTP login name."))
    smtp_password: str | None = field(
        default=None, repr=False, metadata=_doc("SMTP password; never logged.")
    )
    smtp_from: str = field(
        default="Kuwa <kuwa@localhost>", metadata=_doc("Sender address of Kuwa's mail.")
    )
    smtp_timeout: float = field(default=10.0, metadata=_doc("Seconds to wait for the SMTP server."))
    # --- LDAP ---------------------------------------------------------------------------
    ldap_url: str | None = field(
        default=None,
        metadata=_doc("LDAP server, ldap://host:389 or ldaps://host:636; unset: no LDAP sign-in."),
    )
    ldap_start_tls: bool = field(
        default=False, metadata=_doc("LDAP: upgrade ldap:// connections with StartTLS.")
    )
    ldap_ca_file: Path | None = field(
        default=None, metadata=_doc("LDAP: CA certificates (PEM) to verify the server with.")
    )
    ldap_base_dn: str = field(
        default="",
        metadata=_doc("LDAP: where to search for users, e.g. ou=people,dc=example,dc=org."),
    )
    ldap_user_filter: str = field(
        default="(|(uid={username})(mail={username}))",
        metadata=_doc(
            "LDAP: search filter for a user; {username} is replaced by the escaped sign-in name."
        ),
    )
    ldap_bind_dn: str | None = field(
        default=None,
        metadata=_doc(
            "LDAP: account that searches for users (unset: anonymous search). The user's own "
            "password is then checked by binding as the user."
        ),
    )
    ldap_bind_password: str | None = field(
        default=None, repr=False, metadata=_doc("LDAP: password of ldap_bind_dn; never logged.")
    )
    ldap_email_attribute: str = field(
        default="mail", metadata=_doc("LDAP: attribute with the email.")
    )
    ldap_name_attribute: str = field(
        default="cn", metadata=_doc("LDAP: attribute with the display name.")
    )
    ldap_group: str = field(
        default="Users", metadata=_doc("Group that accounts created on first LDAP sign-in join.")
    )
    ldap_timeout: float = field(
        default=5.0, metadata=_doc("LDAP: seconds to wait for the server before local fallback.")
    )
    # --- OIDC ---------------------------------------------------------------------------
    oidc_provider: str | None = field(
        default=None,
        metadata=_doc(
            "OIDC/OAuth2 sign-in: google, microsoft, github or custom (custom needs "
            "oidc_discovery_url); unset: none."
        ),
    )
    oidc_discovery_url: str | None = field(
        default=None,
        metadata=_doc("OIDC discovery URL (…/.well-known/openid-configuration) for custom."),
    )
    oidc_client_id: str | None = field(default=None, metadata=_doc("OIDC client id."))
    oidc_client_secret: str | None = field(
        default=None, repr=False, metadata=_doc("OIDC client secret; never logged.")
    )
    oidc_scopes: str = field(
        default="openid email profile", metadata=_doc("OIDC scopes to ask for.")
    )
    oidc_label: str | None = field(
        default=None, metadata=_doc("Text of the sign-in button (default: the provider's name).")
    )
    oidc_tenant: str = field(
        default="common", metadata=_doc("microsoft preset: the Entra ID tenant.")
    )
    oidc_group_claim: str | None = field(
        default=None,
        metadata=_doc(
            "Claim whose value names the Kuwa group of an account created on first OIDC "
            "sign-in (unset or unknown group: oidc_group)."
        ),
    )
    oidc_group: str = field(
        default="Users", metadata=_doc("Group that accounts created on first OIDC sign-in join.")
    )
    # --- chat with documents -------------------------------------------------------------
    files_dir: Path | None = field(
        default=None,
        metadata=_doc(
            "Folder that keeps uploaded documents. Several gateways and workers need one "
            "folder they all reach (NFS, or an object store mounted with s3fs or gcsfuse). "
            "Unset: the documents are kept in the database, which they share already."
        ),
    )
    files_max_bytes: int = field(
        default=20 * 1024 * 1024,
        metadata=_doc("Largest document one upload accepts, in bytes; larger ones get 413."),
    )
    files_max_pages: int = field(
        default=2000,
        metadata=_doc(
            "Most pages (PDF pages, slides, sheets) one document may have; more get 413."
        ),
    )
    files_user_quota_bytes: int = field(
        default=500 * 1024 * 1024,
        metadata=_doc(
            "Bytes of documents one user may keep, all rooms and bots (0: no limit); an "
            "upload beyond it gets 413."
        ),
    )
    files_user_quota_files: int = field(
        default=500,
        metadata=_doc("Documents one user may keep (0: no limit); one more gets 413."),
    )
    files_extract_timeout: float = field(
        default=300.0,
        metadata=_doc(
            "Seconds the text of one document may take to extract (in a child process with "
            "a memory limit) before it is stopped and the document marked failed."
        ),
    )
    files_passages: int = field(
        default=5,
        metadata=_doc(
            "Passages of a room's documents put into each model's prompt (the best ranked)."
        ),
    )
    embedding_url: str | None = field(
        default=None,
        metadata=_doc(
            "An OpenAI-compatible embeddings API up to /v1 (vLLM serving an embedding model, "
            "Text Embeddings Inference, Ollama, OpenAI, ...) to rank passages by meaning too, "
            "fused with BM25. Unset: embedding_model, if set, is served by Kuwa itself."
        ),
    )
    embedding_model: str | None = field(
        default=None,
        metadata=_doc(
            "Alone: the access code of an embedding model Kuwa serves (an executor with "
            "--backend embeddings), which then ranks passages by meaning too, fused with "
            "BM25. With embedding_url: the model's name there. Neither set: BM25 only."
        ),
    )
    embedding_api_key: str | None = field(
        default=None,
        repr=False,
        metadata=_doc("Bearer token for embedding_url, if it needs one; never logged."),
    )
    embedding_timeout: float = field(
        default=30.0,
        metadata=_doc(
            "Seconds to wait for the embedding model (at embedding_url, or each embedding "
            "job of Kuwa's own) to answer."
        ),
    )
    # --- data plane ---------------------------------------------------------------------
    heartbeat_ttl: float = field(
        default=3.0,
        metadata=_doc("Seconds an executor counts as live after its last heartbeat."),
    )
    transcript_ttl: int = field(
        default=3600,
        metadata=_doc(
            "Seconds a running job's state and chunk transcript are kept in Redis (the "
            "longest a job may run and still be replayed)."
        ),
    )
    finished_job_ttl: int = field(
        default=300,
        metadata=_doc(
            "Seconds a finished job's state and transcript stay in Redis: how long a reader "
            "cut off from its gateway may resume it (GET /v1/jobs/{id}/events) and a room "
            "whose gateway went away still finds the answer. Redis's memory for finished "
            "jobs is about request rate x this x transcript size (docs/operations.md)."
        ),
    )
    transcript_max_chunks: int = field(
        default=20000, metadata=_doc("Most chunk messages kept in one job's transcript.")
    )
    coalesce_ms: float = field(
        default=3.0,
        metadata=_doc(
            "An executor sends at most one chunk message per job this often, besides the "
            "job's first and last (never delayed); tokens that arrive faster are coalesced "
            "into one message."
        ),
    )
    max_deliveries: int = field(
        default=3, metadata=_doc("Times a job is handed to an executor before it fails.")
    )
    # --- dashboard ----------------------------------------------------------------------
    joblog_max_entries: int = field(
        default=100_000,
        metadata=_doc("Finished jobs kept in the dashboard's job log (a capped Redis stream)."),
    )
    usage_retention_days: int = field(
        default=400, metadata=_doc("Days the per-day usage statistics are kept in Redis.")
    )
    timeseries_interval: float = field(
        default=5.0, metadata=_doc("Seconds between two samples of the dashboard's charts.")
    )
    timeseries_window: int = field(
        default=3600, metadata=_doc("Seconds of samples kept for the dashboard's charts.")
    )
    # --- executor -----------------------------------------------------------------------
    access_code: tuple[str, ...] = field(
        default=(),
        metadata=_doc("Access codes an executor serves (comma-separated in the environment)."),
    )
    backend: str | None = field(
        default=None,
        metadata=_doc(
            "Executor backend: vllm, transformers, embeddings (an embedding model for "
            "/v1/embeddings and document retrieval), openai, debug or any entry point in "
            "kuwa.executors. Unset: vllm when a model is given and vLLM and a GPU are present, "
            "transformers when a model is given otherwise, debug without a model."
        ),
    )
    max_concurrency: int = field(
        default=16, metadata=_doc("Jobs one executor runs at once (its slots).")
    )
    executor_name: str | None = field(
        default=None, metadata=_doc("Name an executor registers under (default: host-pid).")
    )
    drain_timeout: float = field(
        default=30.0,
        metadata=_doc("Seconds an executor waits for running jobs after SIGTERM."),
    )
    debug_delay: float = field(
        default=0.0, metadata=_doc("Debug backend: seconds to wait before each token.")
    )
    debug_transform: str = field(
        default="echo",
        metadata=_doc(
            "Debug backend: echo, reverse or upper (applied to the last user message), "
            "history (the whole conversation), or embed (an embedding model of hashed words)."
        ),
    )
    system_prompt: str | None = field(
        default=None, metadata=_doc("Executor: system prompt for every job (like SYSTEM).")
    )
    modelfile: Path | None = field(
        default=None,
        metadata=_doc("Executor: the model's Modelfile (SYSTEM, PARAMETER, MESSAGE, TEMPLATE, …)."),
    )
    rules: Path | None = field(
        default=None,
        metadata=_doc(
            "Executor: rule file (YAML or TOML): input/output filters, bounds, trimming "
            "(docs/rules.md)."
        ),
    )
    upstream_base_url: str | None = field(
        default=None,
        metadata=_doc(
            "openai backend: base URL of an OpenAI-compatible API up to /v1, e.g. "
            "https://api.openai.com/v1, http://127.0.0.1:11434/v1 (Ollama) or another "
            "Kuwa gateway's /v1."
        ),
    )
    upstream_api_key: str | None = field(
        default=None,
        repr=False,
        metadata=_doc(
            "openai backend: API key sent to the upstream as a Bearer token; never logged. "
            "Prefer this variable to --api-key, which other users can see in the process list."
        ),
    )
    upstream_model: str | None = field(
        default=None,
        metadata=_doc("openai backend: the upstream's model name (default: --model)."),
    )
    upstream_timeout: float = field(
        default=60.0,
        metadata=_doc(
            "openai backend: seconds to wait for the upstream to connect, and for each next "
            "piece of an answer."
        ),
    )
    # --- model engines (vllm backend) -------------------------------------------------------
    model: str | None = field(
        default=None, metadata=_doc("Model an executor serves: a Hugging Face id or a path.")
    )
    gpu_memory_utilization: float | None = field(
        default=None,
        metadata=_doc(
            "vLLM: fraction of GPU memory the engine may use (on its CPU build: of the RAM, "
            "weights included, unless kv_cache_gib is set)."
        ),
    )
    tensor_parallel_size: int | None = field(
        default=None, metadata=_doc("vLLM: GPUs to split the model over.")
    )
    max_model_len: int | None = field(
        default=None, metadata=_doc("Context window in tokens (default: the model's own).")
    )
    dtype: str | None = field(
        default=None, metadata=_doc("Weights dtype: auto, bfloat16, float16, float32.")
    )
    quantization: str | None = field(
        default=None, metadata=_doc("vLLM quantization method (awq, gptq, fp8, ...).")
    )
    trust_remote_code: bool = field(
        default=False, metadata=_doc("Allow the model repository's own Python code to run.")
    )
    load_format: str | None = field(
        default=None,
        metadata=_doc("vLLM load format; 'dummy' gives random weights (benchmarks, tests)."),
    )
    enforce_eager: bool | None = field(
        default=None,
        metadata=_doc(
            "vLLM: run the model eagerly, without CUDA graphs or compilation (faster start). "
            "Default: on for vLLM's CPU build, off on GPUs."
        ),
    )
    kv_cache_gib: float | None = field(
        default=None,
        metadata=_doc(
            "vLLM: memory for the KV cache in GiB. Default on vLLM's CPU build: 4, or a "
            "quarter of the free RAM if less; on GPUs, what gpu_memory_utilization leaves."
        ),
    )
    # --- stress measure ------------------------------------------------------------------
    stress_targets: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Hosts (names, addresses or URLs, comma-separated) that `kuwa-cli stress` may "
            "send load to besides this machine's loopback addresses and public_url's host."
        ),
    )
    # --- kuwa-cli up --------------------------------------------------------------------
    demo_models: tuple[str, ...] = field(
        default=("echo", "reverse", "upper"),
        metadata=_doc(
            "Access codes of the demo debug executors `kuwa-cli up` starts (comma-separated; "
            "empty for none). Each name that is a debug transform uses it."
        ),
    )
    admin_email: str = field(
        default="admin@localhost", metadata=_doc("Email of the admin `kuwa-cli up` creates.")
    )
    admin_password: str | None = field(
        default=None,
        metadata=_doc("Password of that admin (default: a random one, printed once)."),
    )

    # ------------------------------------------------------------------------------------
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
