"""Dashboard stress runs (administrators, ``tab_Manage``): a form that starts a run in the
background worker against this gateway, the runs' progress and results, and a chart that
compares them. The run itself is in :mod:`kuwa.web.dashboard_stressjob`.
"""

from __future__ import annotations

import math
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from kuwa.broker.connection import redis_errors
from kuwa.errors import InvalidRequestError, KuwaError
from kuwa.gateway.endpoint import HTML, endpoint
from kuwa.gateway.http import JSONResponse
from kuwa.gateway.state import state_of
from kuwa.schemas import JobKind
from kuwa.settings import Settings
from kuwa.web import forms
from kuwa.web.core import client_ip, current_user, page, web_state
from kuwa.web.dashboard_page import STRESS, show
from kuwa.web.dashboard_stressjob import StressRuns, enqueue, new_run_id
from kuwa.web.session import flash

DEFAULTS = {"concurrency": "8", "requests": "100", "rate": "", "duration": "", "max_tokens": ""}


def target_url(settings: Settings) -> str:
    """Where the worker sends the load: the public URL, else this gateway on loopback."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"http://127.0.0.1:{settings.port}"


def _runs(request: Request) -> StressRuns:
    return StressRuns(state_of(request).redis)


def _number(form: FormData, name: str, kind: type[int] | type[float]) -> Any:
    raw = str(form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise InvalidRequestError(f"{name} must be a number, not {raw!r}", param=name) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequestError(f"{name} must be a finite number", param=name)
    return value


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def config_of(form: FormData, settings: Settings) -> dict[str, Any]:
    """The run's settings from the form, checked as the stress library checks them."""
    from kuwa.stress import StressConfig, targets_of

    models = tuple(dict.fromkeys(str(m) for m in form.getlist("models") if str(m).strip()))
    config = StressConfig(
        url=target_url(settings),
        token="checked-later",  # noqa: S106 -- a placeholder: the worker mints the real one
        models=models,
        concurrency=_or(_number(form, "concurrency", int), 8),
        requests=_or(_number(form, "requests", int), 100),
        rate=_number(form, "rate", float),
        duration=_number(form, "duration", float),
        max_tokens=_number(form, "max_tokens", int),
    )
    config.validate(targets_of(settings))
    return {
        "url": config.url,
        "models": list(config.models),
        "concurrency": config.concurrency,
        "requests": config.requests,
        "rate": config.rate,
        "duration": config.duration,
        "max_tokens": config.max_tokens,
    }


async def _page(
    request: Request,
    *,
    error: str = "",
    status: int = 200,
    values: dict[str, Any] | None = None,
) -> Response:
    with redis_errors("listing models"):
        live = [code for code, _ in await state_of(request).chat.live_models(JobKind.CHAT)]
        runs = await _runs(request).latest()
    chosen = (values or {}).get("models") or live[:1]
    return await show(
        request,
        "dashboard/stress.html",
        status_code=status,
        error=error,
        models=sorted({*live, *chosen}),
        chosen=chosen,
        values={**DEFAULTS, **{k: str(v) for k, v in (values or {}).items() if k != "models"}},
        runs=runs,
        target=target_url(web_state(request).settings),
    )


@page(STRESS)
@endpoint("Stress measurements", media=HTML)
async def stress_page(request: Request) -> Response:
    return await _page(request)


@page(STRESS)
@endpoint("Start a stress run (a background job)", form=forms.StressRun, redirect=True)
async def start_run(request: Request) -> Response:
    admin = await current_user(request)
    assert admin is not None
    settings = web_state(request).settings
    async with request.form(max_files=0, max_fields=100) as form:
        values: dict[str, Any] = {k: str(form.get(k) or "") for k in DEFAULTS}
        values["models"] = [str(m) for m in form.getlist("models")]
        try:
            config = config_of(form, settings)
        except KuwaError as exc:
            return await _page(request, error=exc.message, status=exc.status, values=values)
    run: dict[str, Any] = {
        "id": new_run_id(),
        "created": time.time(),
        "user_id": admin.id,
        "user": admin.email,
        "status": "queued",
        "config": config,
        "progress": None,
        "result": None,
        "error": None,
    }
    with redis_errors("storing the stress run"):
        await _runs(request).create(run)
    run["rq_job"] = await run_in_threadpool(enqueue, settings, run["id"])
    await run_in_threadpool(
        web_state(request).store.audit.record,
        "stress_run_started",
        user_id=admin.id,
        actor=admin.email,
        target=run["id"],
        detail=f"models {', '.join(config['models'])}; concurrency {config['concurrency']}; "
        f"requests {config['requests']}",
        ip=client_ip(request),
    )
    flash(request, f"Stress run {run['id']} is queued; the background worker runs it.")
    return RedirectResponse("/dashboard/stress", status_code=303)


@page(STRESS)
@endpoint("Stop a stress run", form=forms.StopRun, redirect=True)
async def stop_run(request: Request) -> Response:
    async with request.form(max_files=0, max_fields=10) as form:
        run_id = str(form.get("run") or "")
    runs = _runs(request)
    with redis_errors("stopping the stress run"):
        run = await runs.get(run_id)
        if run is None:
            flash(request, "There is no such stress run.", "error")
            return RedirectResponse("/dashboard/stress", status_code=303)
        await runs.ask_stop(run_id)
        if run["status"] == "queued":
            await runs.update(run_id, status="stopped", finished=time.time())
    flash(request, f"Stress run {run_id} stops.")
    return RedirectResponse("/dashboard/stress", status_code=303)


@page(STRESS)
@endpoint("The stress runs and their progress", answer=dict[str, Any])
async def runs_json(request: Request) -> Response:
    with redis_errors("listing stress runs"):
        runs = await _runs(request).latest()
    return JSONResponse({"runs": runs}, headers={"Cache-Control": "no-store"})


def routes() -> list[BaseRoute]:
    return [
        Route("/dashboard/stress", stress_page, methods=["GET"]),
        Route("/dashboard/stress", start_run, methods=["POST"]),
        Route("/dashboard/stress/stop", stop_run, methods=["POST"]),
        Route("/app/dashboard/stress", runs_json, methods=["GET"]),
    ]
