"""Every Redis key and channel name Kuwa uses, built here and nowhere else.

All names start with ``kuwa:``. Keys of one job share the hash tag ``{job:ID}`` and keys of one
queue share ``{q:CODE}``, so a Redis Cluster keeps each group on one shard (and one Lua script
may touch all of a group's keys).
"""

from __future__ import annotations

import re

PREFIX = "kuwa:"
CONSUMER_GROUP = "executors"
CANCEL_CHANNEL = PREFIX + "cancel"
MODELS = PREFIX + "models"
EXECUTORS = PREFIX + "executors"
EXECUTOR_INFO = PREFIX + "executors:info"  # hash: id -> last heartbeat's JSON (dead ones too)
KERNEL_LEADER = PREFIX + "kernel:leader"
GATEWAY_CONTROL = PREFIX + "gateway:control"  # every gateway's hub listens here
MODEL_CONFIG = PREFIX + "models:config"  # hash: access code -> JSON of per-model deadlines

_ACCESS_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def valid_access_code(code: str) -> bool:
    """Letters, digits and ``. _ : / @ + -``, 1-128 characters, starting alphanumeric."""
    return bool(_ACCESS_CODE.match(code))


def _code(code: str) -> str:
    if not valid_access_code(code):
        raise ValueError(f"invalid access code {code!r}")
    return code


def valid_job_id(job_id: str) -> bool:
    return bool(_JOB_ID.match(job_id))


def _job(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise ValueError(f"invalid job id {job_id!r}")
    return job_id


def queue_stream(code: str) -> str:
    """The Redis Stream of jobs for one access code (consumer group ``executors``)."""
    return f"{PREFIX}{{q:{_code(code)}}}:jobs"


def queue_executors(code: str) -> str:
    """Sorted set: executor ids serving ``code``, scored by heartbeat expiry (unix seconds)."""
    return f"{PREFIX}{{q:{_code(code)}}}:executors"


def queue_slots(code: str) -> str:
    """Hash: executor id -> the slots it offers this queue (its slots less those busy with its
    other queues). Its free slots are these less its pending entries in the consumer group;
    only live executors count."""
    return f"{PREFIX}{{q:{_code(code)}}}:slots"


def queue_ring(code: str) -> str:
    """List of the users that have a backlog on this queue, in turn order."""
    return f"{PREFIX}{{q:{_code(code)}}}:ring"


def queue_backlogged(code: str) -> str:
    """Counter: jobs waiting in the users' backlogs of this queue."""
    return f"{PREFIX}{{q:{_code(code)}}}:backlogged"


def queue_backlog_prefix(code: str) -> str:
    """Prefix of the per-user backlog lists (append the user id)."""
    return f"{PREFIX}{{q:{_code(code)}}}:backlog:"


def queue_backlog(code: str, user: str) -> str:
    """One user's jobs waiting their turn on this queue (``id\npayload`` items, FIFO)."""
    return queue_backlog_prefix(code) + user


def user_jobs(user: str) -> str:
    """Sorted set: a user's running jobs (any model), scored by when the claim lapses."""
    return f"{PREFIX}user:{user}:jobs"


def user_requests(user: str, minute: int) -> str:
    """Counter: a user's requests in one clock minute (expires after it)."""
    return f"{PREFIX}user:{user}:rpm:{minute}"


def queue_standby(code: str) -> str:
    """Flag (with a short TTL) set by a scaling kernel: jobs may wait for an executor to start."""
    return f"{PREFIX}{{q:{_code(code)}}}:standby"


def queue_latency(code: str) -> str:
    """List of the latest jobs' ``"ttft tpot"`` seconds (newest first, capped)."""
    return f"{PREFIX}{{q:{_code(code)}}}:latency"


def queue_counters(code: str) -> str:
    """Hash of running totals: ``tokens``, ``jobs``, ``failed``."""
    return f"{PREFIX}{{q:{_code(code)}}}:counters"


def executor(executor_id: str) -> str:
    """JSON description of one live executor; expires with its heartbeat."""
    return f"{PREFIX}executor:{executor_id}"


def job_channel(job_id: str) -> str:
    """Pub/sub channel the executor publishes a job's chunks on."""
    return f"{PREFIX}{{job:{_job(job_id)}}}:chunks"


def gateway_inbox(hub_id: str) -> str:
    """Pub/sub channel of one gateway process: the chunks of the jobs it started, every job
    of an executor's round in one message (see ``broker/publish.lua``)."""
    return f"{PREFIX}gateway:{hub_id}:inbox"


def job_transcript(job_id: str) -> str:
    """List of every chunk message of a job, in sequence order (capped, with a TTL)."""
    return f"{PREFIX}{{job:{_job(job_id)}}}:transcript"


def job_state(job_id: str) -> str:
    """Hash: status, executor, owner, model, timestamps of one job (with a TTL)."""
    return f"{PREFIX}{{job:{_job(job_id)}}}:state"


def job_cancel(job_id: str) -> str:
    """Flag set when a job is cancelled before an executor picked it up."""
    return f"{PREFIX}{{job:{_job(job_id)}}}:cancel"


def job_key_around(key: str) -> tuple[str, str]:
    """What comes before and after the job id in a job's ``key`` (``"state"``, ``"cancel"``):
    for a script that builds the keys of the jobs it finds (take.lua)."""
    if key not in ("state", "cancel"):
        raise ValueError(f"no per-job key {key!r}")
    return f"{PREFIX}{{job:", f"}}:{key}"


def session(session_id: str) -> str:
    """A web sign-in: JSON with the user id, created and CSRF-independent metadata."""
    return f"{PREFIX}session:{session_id}"


def user_sessions(user: int) -> str:
    """Set: the session ids of a user's web sign-ins (to end them all at once)."""
    return f"{PREFIX}user:{user}:sessions"


def login_failures(kind: str, who: str) -> str:
    """Counter of failed sign-ins by account or client address within the window."""
    return f"{PREFIX}login:fail:{kind}:{who}"


def room_channel(room_id: int) -> str:
    """Pub/sub channel of one room's events (prompt sent, answer started/finished, sharing)."""
    return f"{PREFIX}room:{int(room_id)}:events"


def room_presence(room_id: int) -> str:
    """Sorted set: who has the room open ("user:connection"), scored by expiry."""
    return f"{PREFIX}room:{int(room_id)}:presence"


# --- the dashboard: job log, usage per day, time series, kernels, stress runs ---------------
JOB_LOG = PREFIX + "joblog"  # stream: one entry per finished job (capped, MAXLEN ~)
KERNELS = PREFIX + "kernels"  # sorted set: kernel ids scored by heartbeat expiry
KERNEL_INFO = PREFIX + "kernels:info"  # hash: kernel id -> JSON (host, pid, started)
TIMESERIES_CURSOR = PREFIX + "ts:cursor"  # the last job-log entry the sampler has counted
STRESS_RUNS = PREFIX + "stress:runs"  # sorted set: stress run ids scored by creation time


def usage_day(day: str) -> str:
    """Hash of one UTC day's usage (``YYYY-MM-DD``): ``metric|model|group`` -> count."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
        raise ValueError(f"invalid day {day!r}")
    return f"{PREFIX}usage:{day}"


def timeseries_tick(bucket: int) -> str:
    """Flag (SET NX, short TTL): the sampler of this time bucket has run (one writer each)."""
    return f"{PREFIX}ts:tick:{int(bucket)}"


def queue_timeseries(code: str) -> str:
    """List of one model's samples, newest first (capped to the time-series window)."""
    return f"{PREFIX}{{q:{_code(code)}}}:ts"


def stress_run(run_id: str) -> str:
    """JSON of one stress run from the dashboard (settings, progress, result)."""
    return f"{PREFIX}stress:run:{_job(run_id)}"


def stress_stop(run_id: str) -> str:
    """Flag: an admin asked this stress run to stop."""
    return f"{PREFIX}stress:run:{_job(run_id)}:stop"
