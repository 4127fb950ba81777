"""A running clinic for end-to-end tests: the real web app served by uvicorn on loopback, the
Twilio emulator behind the real SDK (it also signs the inbound webhooks, as Twilio does), a real
SMTP server, and the `checkin` command on the same database."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import uvicorn
from checkin_emulator import TwilioEmulator
from sqlalchemy import select

from tests.cli import Checkin
from worker.channels.factory import build_channels
from worker.config import Settings
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import session_scope
from worker.store.models import InboundMessage
from worker.web.app import create_app
from worker.web.inbound_sink import CelerySink, InboundSink, LocalSink

CLINIC_NUMBER = "+12125550000"
ONCALL_PHONE = "+12125559911"
ONCALL_EMAIL = "oncall@clinic.example"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Clinic:
    env: dict[str, str]
    settings: Settings
    rt: Runtime
    emulator: TwilioEmulator
    smtp: Any
    sink: InboundSink
    server: uvicorn.Server
    thread: threading.Thread
    base_url: str

    @property
    def cli(self) -> Checkin:
        return Checkin(self.env)

    def patient(
        self, phone: str, *extra: str, tz: str = "America/New_York", consent: str = "sms"
    ) -> int:
        args = [
            "patients",
            "add",
            "--name",
            "Pat Doe",
            "--phone",
            phone,
            "--tz",
            tz,
            "--channel",
            "sms",
        ]
        if consent:
            args += ["--consent", consent]
        return int(self.cli.json(*args, *extra)["id"])

    def text(self, sender: str, body: str, sid: str | None = None, wait: bool = True) -> Any:
        response = self.emulator.send_inbound(
            f"{self.base_url}/webhooks/twilio/sms", sender, body, to=CLINIC_NUMBER, message_sid=sid
        )
        if wait and isinstance(self.sink, LocalSink):
            self.sink.drain()
        return response

    def sms_to(self, number: str) -> list[str]:
        return [m["body"] for m in self.emulator.messages if m["to"] == number]

    def mail_to(self, address: str) -> list[bytes]:
        return [m.content for m in self.smtp.handler.received if address in m.rcpt_tos]

    def inbound(self) -> list[InboundMessage]:
        with session_scope(self.rt.sessions) as session:
            return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sink.close()
        self.rt.close()


def open_clinic(
    db_url: str, emulator: TwilioEmulator, smtp: Any, *, celery: bool = False, **overrides: Any
) -> Clinic:
    """With celery=True replies go to the `checkin.inbound` task on the broker in
    CHECKIN_BROKER_URL (pass it in overrides), as in production; otherwise the web process
    handles them in its own thread pool."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        "CHECKIN_DATABASE_URL": db_url,
        "CHECKIN_SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": emulator.account_sid,
        "TWILIO_AUTH_TOKEN": emulator.auth_token,
        "TWILIO_FROM_NUMBER": CLINIC_NUMBER,
        "TWILIO_API_URL": emulator.base_url,
        "CHECKIN_EMAIL_BACKEND": "smtp",
        "CHECKIN_SMTP_HOST": smtp.host,
        "CHECKIN_SMTP_PORT": str(smtp.port),
        "CHECKIN_EMAIL_FROM": "checkins@clinic.example",
        "CHECKIN_PUBLIC_URL": base_url,
        "CHECKIN_CLINIC_NAME": "Riverside Pain & Wellness",
        "CHECKIN_CLINIC_PHONE": "+12125550199",
        "CHECKIN_ONCALL_PHONE": ONCALL_PHONE,
        "CHECKIN_ONCALL_EMAIL": ONCALL_EMAIL,
        "CHECKIN_API_TOKEN": "test-token-123",
        # Two-factor sign-in is tested on its own (tests/web/test_access*.py); elsewhere the
        # tests sign in with a password only.
        "CHECKIN_REQUIRE_2FA": "0",
        **{k: str(v) for k, v in overrides.items()},
    }
    settings = Settings(_env_file=None, **{_field(k): v for k, v in env.items()})  # type: ignore[arg-type]
    rt = build_runtime(settings, channels=build_channels(settings))
    sink: InboundSink = CelerySink(settings) if celery else LocalSink(rt)
    app = create_app(settings, rt, inbound_sink=sink)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "web app did not start"
        time.sleep(0.02)
    return Clinic(env, settings, rt, emulator, smtp, sink, server, thread, base_url)


def _field(variable: str) -> str:
    name = variable.lower()
    return name.removeprefix("checkin_")


def utcnow() -> datetime:
    return datetime.now(UTC)
