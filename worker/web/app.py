"""The web app: health, metrics, webhooks, the clinician API and the dashboard."""

from __future__ import annotations

import contextlib
import gc
import hmac
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from worker.config import Settings
from worker.services.runtime import Runtime, build_runtime
from worker.web.access import AccessContext
from worker.web.api import api_router, install_error_handlers
from worker.web.appointment_links import appointment_links_router
from worker.web.dashboard import STATIC, dashboard_router
from worker.web.forms import forms_router
from worker.web.inbound_sink import InboundSink, default_sink
from worker.web.limits import BodySizeLimit
from worker.web.metrics import WebhookTimer, render_metrics, webhook_histogram
from worker.web.unsubscribe import unsubscribe_router
from worker.web.webhooks import TwilioWebhooks


def create_app(
    settings: Settings, runtime: Runtime | None = None, inbound_sink: InboundSink | None = None
) -> FastAPI:
    rt = runtime or build_runtime(settings)
    sink = inbound_sink or default_sink(settings, rt)
    # FastAPI's own docs page loads Swagger UI from a CDN: off. /api/docs is the dashboard's
    # local page (signed in, strict CSP), or absent with CHECKIN_API_DOCS=0.
    app = FastAPI(
        title="checkin-worker",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = rt
    app.state.settings = settings
    app.state.inbound_sink = sink
    app.include_router(api_router())
    app.include_router(forms_router(settings, rt))
    app.include_router(unsubscribe_router(rt))
    app.include_router(appointment_links_router(rt))
    app.include_router(dashboard_router(rt))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_error_handlers(app)
    # Added last runs first: webhooks are timed end to end; bodies are limited before any
    # route reads them; the Twilio webhooks are answered before FastAPI's routing (their hot
    # path: see worker/web/webhooks.py).
    process_metrics = CollectorRegistry()
    app.add_middleware(TwilioWebhooks, settings=settings, rt=rt, sink=sink)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    app.add_middleware(WebhookTimer, histogram=webhook_histogram(process_metrics))
    app.add_middleware(AccessContext, https=settings.public_url.startswith("https://"))

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

    exposed = _shared_metrics() or process_metrics

    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        if metrics_token is not None:
            given = request.headers.get("authorization", "")
            expected = f"Bearer {metrics_token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return Response(
                    "a valid bearer token is required (CHECKIN_METRICS_TOKEN)\n",
                    status_code=401,
                    media_type="text/plain",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        body, content_type = render_metrics(rt, exposed)
        return Response(body, media_type=content_type)

    return app


def app_factory() -> FastAPI:
    """The app as each of several uvicorn processes builds it (`checkin web --workers N`)."""
    from worker.config import load_settings
    from worker.logging_setup import configure_logging

    settings = load_settings()
    settings.require_secret_key()
    configure_logging(settings)
    app = create_app(settings)
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """Move everything built so far (modules, the app, SQLAlchemy's and Pydantic's structures:
    ~140,000 objects) out of the garbage collector's reach. They live as long as the process;
    without this every full collection walks them all again: 40-50 ms (measured on a 2-core
    machine) during which no request in flight moves."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def multiprocess_metrics() -> Iterator[None]:
    """For several web processes: prometheus_client's multiprocess mode, in a fresh folder
    (PROMETHEUS_MULTIPROC_DIR, unless set already), so the webhook histogram of every process
    is summed in whichever answers a scrape. Must be entered before the processes start."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    folder = tempfile.mkdtemp(prefix="checkin-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    try:
        yield
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(folder, ignore_errors=True)


def _shared_metrics() -> CollectorRegistry | None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def _broker_check(settings: Settings) -> str:
    if not settings.broker_url:
        return "error: CHECKIN_BROKER_URL not set"
    from worker.broker import check

    try:
        check(settings)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
