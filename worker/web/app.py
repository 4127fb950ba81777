"""The web app: health, metrics, webhooks, the clinician API and the dashboard."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from worker.config import Settings
from worker.services.runtime import Runtime, build_runtime
from worker.web.answers import answers_router
from worker.web.api import api_router, install_error_handlers
from worker.web.dashboard import STATIC, dashboard_router
from worker.web.inbound_sink import InboundSink, default_sink
from worker.web.limits import BodySizeLimit
from worker.web.metrics import WebhookTimer, render_metrics, webhook_histogram
from worker.web.webhooks import webhook_router


def create_app(
    settings: Settings, runtime: Runtime | None = None, inbound_sink: InboundSink | None = None
) -> FastAPI:
    rt = runtime or build_runtime(settings)
    sink = inbound_sink or default_sink(settings, rt)
    app = FastAPI(
        title="checkin-worker",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.runtime = rt
    app.state.settings = settings
    app.state.inbound_sink = sink
    app.include_router(webhook_router(settings, rt, sink))
    app.include_router(api_router())
    app.include_router(answers_router(settings, rt))
    app.include_router(dashboard_router(rt))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_error_handlers(app)
    # Added last runs first: webhooks are timed end to end; bodies are limited before any
    # route reads them.
    process_metrics = CollectorRegistry()
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    app.add_middleware(WebhookTimer, histogram=webhook_histogram(process_metrics))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        checks: dict[str, Any] = {}
        try:
            with rt.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        checks["broker"] = _broker_check(settings)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", **checks}, 200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        body, content_type = render_metrics(rt, process_metrics)
        return Response(body, media_type=content_type)

    return app


def _broker_check(settings: Settings) -> str:
    if not settings.broker_url:
        return "error: CHECKIN_BROKER_URL not set"
    import redis

    try:
        client = redis.Redis.from_url(
            settings.broker_url, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            client.ping()
        finally:
            client.close()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
