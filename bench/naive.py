"""The simplest design, for comparison: one Celery task per message, each opening its own
database connection and session and its own Twilio client, on Celery's defaults (prefork, one
process per core).

It sends the same rows through the same emulator as the real system, with the same send logic
(`worker.services.outbound.send.send_one`: claim, consent and quiet-hours checks, rendering, the Twilio
call, the result), so the comparison is about the shape of the work only: no chunks, no threads
in flight per process, no pooled connections, a fresh HTTPS-style client per message. The Jinja
renderer is built once per process (a naive design would compile templates per message too; that
is left out to keep the comparison about I/O).

Run by `bench.dispatch` as `python -m celery -A bench.naive worker -Q naive ...`, configured from
the same CHECKIN_* / TWILIO_* environment as the real workers. The app is built at import time
because `celery -A` imports it; this is a benchmark fixture, not project code.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from celery import Celery

from worker.channels import Channels
from worker.channels.console import ConsoleEmail
from worker.channels.twilio_sms import TwilioSms
from worker.config import Settings
from worker.rendering import Renderer
from worker.services.outbound.send import send_one
from worker.services.runtime import Runtime
from worker.store.db import make_engine, make_session_factory

QUEUE = "naive"
app = Celery("naive", broker=os.environ.get("CHECKIN_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_renderer: Renderer | None = None


@app.task(name="naive.send", ignore_result=True)  # type: ignore[untyped-decorator]
def send(message_id: int) -> str:
    global _renderer
    if _renderer is None:
        _renderer = Renderer()
    settings = Settings()
    assert settings.twilio_account_sid and settings.twilio_auth_token
    engine = make_engine(settings.database_url, pool_size=1)  # a new connection per message
    sms = TwilioSms(  # a new SDK client and HTTP session per message
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        from_number=settings.twilio_from_number,
        messaging_service_sid=None,
        api_url=settings.twilio_api_url,
        timeout=settings.twilio_timeout_seconds,
    )
    rt = Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        channels=Channels(sms=sms, email=ConsoleEmail()),
        renderer=_renderer,
    )
    try:
        return send_one(rt, int(message_id), datetime.now(UTC))
    finally:
        sms.close()
        engine.dispose()
