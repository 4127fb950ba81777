"""Secrets (TWILIO_AUTH_TOKEN, CHECKIN_API_TOKEN, the SMTP password, CHECKIN_SECRET_KEY, a
broker password) never appear in logs, error answers or /metrics; nor do patients' numbers,
addresses or message bodies in the logs. Real processes, real errors, and a grep of everything
they printed and answered."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from checkin_emulator import TwilioEmulator
from sqlalchemy import select

from tests.cli import Checkin
from tests.conftest import make_settings
from tests.integration.conftest import SmtpFactory
from tests.integration.procs import Procs, base_env, seed_due, statuses, wait_for
from tests.ops.helpers import free_port
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.services.outbound.send_now import queue_now
from worker.services.runtime import build_runtime
from worker.store.db import session_scope
from worker.store.models import Message

TWILIO_TOKEN = "twilio-token-3f9a2b7c1d"
API_TOKEN = "api-token-8e4d2c6b0a"
SMTP_PASSWORD = "smtp-password-5c1e9f3a"
SECRET_KEY = "secret-key-7b3d5f9e1c"
BROKER_PASSWORD = "broker-password-2a4c6e"
SECRETS = (TWILIO_TOKEN, API_TOKEN, SMTP_PASSWORD, SECRET_KEY, BROKER_PASSWORD)
ONCALL_EMAIL = "oncall.person@clinic.example"
CHECKIN = Path(sys.prefix) / "bin" / "checkin"


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def secret_env(db_url: str, emulator: TwilioEmulator) -> dict[str, str]:
    return {
        "CHECKIN_DATABASE_URL": db_url,
        "CHECKIN_SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": emulator.account_sid,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": "+12125550000",
        "TWILIO_API_URL": emulator.base_url,
        "CHECKIN_API_TOKEN": API_TOKEN,
        "CHECKIN_SECRET_KEY": SECRET_KEY,
        "CHECKIN_SMTP_USER": "clinic",
        "CHECKIN_SMTP_PASSWORD": SMTP_PASSWORD,
        "CHECKIN_LOG_JSON": "true",
    }


def assert_clean(text: str, *also: str) -> None:
    for secret in (*SECRETS, *also):
        assert secret not in text, f"{secret!r} leaked"


def test_the_web_app_never_shows_a_secret_in_logs_errors_or_metrics(
    sqlite_url: str, tmp_path: Path
) -> None:
    patient = "+12125550142"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with TwilioEmulator(auth_token=TWILIO_TOKEN) as emulator:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            **secret_env(sqlite_url, emulator),
            # The broker is down: health, metrics and the hand-off of replies all fail.
            "CHECKIN_BROKER_URL": f"redis://:{BROKER_PASSWORD}@127.0.0.1:{dead_port()}/0",
            "CHECKIN_PUBLIC_URL": base,
        }
        log = (tmp_path / "web.log").open("wb")
        proc = subprocess.Popen(
            [str(CHECKIN), "web", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        answers: list[str] = []
        try:
            wait_for(lambda: _up(base), 30, "the web app to answer")
            auth = {"Authorization": f"Bearer {API_TOKEN}"}

            def seen(response: Any) -> Any:
                answers.append(f"{response.status_code} {dict(response.headers)} {response.text}")
                return response

            assert seen(httpx.get(f"{base}/healthz")).status_code == 503
            metrics = seen(httpx.get(f"{base}/metrics"))
            assert "checkin_broker_up 0.0" in metrics.text
            assert (
                seen(
                    httpx.get(f"{base}/api/me", headers={"Authorization": "Bearer wrong"})
                ).status_code
                == 401
            )
            assert seen(httpx.get(f"{base}/api/patients/999999", headers=auth)).status_code == 404
            bad = seen(httpx.post(f"{base}/api/patients", headers=auth, content=b"{not json"))
            assert bad.status_code in (400, 422)
            too_big = seen(
                httpx.post(f"{base}/api/patients", headers=auth, content=b"x" * (70 * 1024))
            )
            assert too_big.status_code == 413
            forged = seen(
                httpx.post(
                    f"{base}/webhooks/twilio/sms",
                    data={"MessageSid": "SMx", "From": patient, "Body": "hello"},
                    headers={"X-Twilio-Signature": "Zm9yZ2Vk"},
                )
            )
            assert forged.status_code == 403
            # A real reply: stored, then its hand-off to the (dead) broker fails and is logged.
            reply = emulator.send_inbound(f"{base}/webhooks/twilio/sms", patient, "I feel 3/10")
            answers.append(f"{reply.status_code} {reply.headers} {reply.text}")
            assert reply.status_code == 200
            seen(httpx.get(f"{base}/api/openapi.json"))
            time.sleep(1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
            log.close()
    output = (tmp_path / "web.log").read_text()
    assert output.strip(), "the web app logged something"
    assert_clean(output, patient, "I feel 3/10")
    assert_clean("\n".join(answers))
    assert all(json.loads(line) for line in output.splitlines() if line.startswith("{"))


def _up(base: str) -> bool:
    try:
        httpx.get(f"{base}/healthz", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def test_the_command_line_never_shows_a_secret(sqlite_url: str) -> None:
    now = datetime.now(UTC)
    seed_due(sqlite_url, now, 3)
    with TwilioEmulator(auth_token=TWILIO_TOKEN) as emulator:
        # Every send is refused: the account's credentials are "wrong".
        emulator.configure(error_rate=1.0, errors=[[401, 20003]])
        env = secret_env(sqlite_url, emulator)
        dead_broker = f"redis://:{BROKER_PASSWORD}@127.0.0.1:{dead_port()}/0"
        cli = Checkin(env)
        outputs = [
            cli.run("tick", "--json").output,
            Checkin({**env, "CHECKIN_BROKER_URL": dead_broker}).run("ops", "status").output,
            cli.run(
                "patients",
                "add",
                "--name",
                "X",
                "--phone",
                "12",
                "--tz",
                "UTC",
                "--channel",
                "sms",
                ok=False,
            ).output,
            Checkin({**env, "CHECKIN_SMTP_PORT": "not-a-port"})
            .run("ops", "status", ok=False)
            .output,
            Checkin({**env, "CHECKIN_BROKER_URL": "amqp://u:" + BROKER_PASSWORD + "@h//"})
            .run("tick", ok=False)
            .output,
        ]
    assert statuses(sqlite_url)["failed"] == 3, "the sends really failed"
    assert "CHECKIN_SMTP_PORT" in outputs[3] and "CHECKIN_BROKER_URL" in outputs[4]
    assert_clean("\n".join(outputs))


class RefuseAuth:
    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        return AuthResult(success=False, handled=False)


@pytest.mark.slow
def test_workers_at_debug_level_log_no_secret_number_address_or_body(
    sqlite_url: str,
    redis_url: str,
    procs: Procs,
    tmp_path: Path,
    smtp_server_factory: SmtpFactory,
) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    now = datetime.now(UTC)
    seed_due(sqlite_url, now, 6)
    rt = build_runtime(
        make_settings(sqlite_url),
        channels=Channels(ConsoleSms(io.StringIO()), ConsoleEmail(io.StringIO())),
    )
    with session_scope(rt.sessions) as session:
        queue_now(
            session,
            now=now,
            dedupe_key="secrets-test:page",
            template="oncall_page",
            kind="page",
            channel="email",
            patient_id=None,
            to_address=ONCALL_EMAIL,
            context={"link": "http://127.0.0.1:8000/followups/1"},
        )
    smtp = smtp_server_factory(authenticator=RefuseAuth(), auth_require_tls=False)
    with TwilioEmulator(auth_token=TWILIO_TOKEN) as emulator:
        # A third of the sends meet a transient error (retried); one number is invalid (21211).
        emulator.configure(
            error_rate=0.3,
            errors=[[429, 20429], [500, 20500]],
            numbers={"+12125550003": {"code": 21211, "status": 400}},
        )
        procs.env = {
            **base_env(tmp_path, sqlite_url, redis_url, emulator),
            **secret_env(sqlite_url, emulator),
            "CHECKIN_EMAIL_BACKEND": "smtp",
            "CHECKIN_SMTP_HOST": smtp.host,
            "CHECKIN_SMTP_PORT": str(smtp.port),
            "CHECKIN_EMAIL_FROM": "checkins@clinic.example",
            "CHECKIN_RETRY_BACKOFF_SECONDS": "1",
        }
        procs.start(
            "beat", "--schedule-file", str(tmp_path / "beat"), "--loglevel", "DEBUG", log="beat.log"
        )
        procs.start(
            "worker", "-Q", "urgent,bulk", "-c", "2", "--loglevel", "DEBUG", log="worker.log"
        )

        def settled() -> bool:
            return statuses(sqlite_url) == {"sent": 5, "failed": 2}

        wait_for(settled, 120, "five sends to go, an invalid number and the email page to fail")
        time.sleep(2)
    with session_scope(rt.sessions) as session:
        rows = session.scalars(select(Message).where(Message.body.is_not(None))).all()
        bodies = [m.body for m in rows if m.body]
        phones = [m.to_address for m in rows if m.to_address and m.channel == "sms"]
    rt.close()
    output = (tmp_path / "worker.log").read_text() + (tmp_path / "beat.log").read_text()
    assert "DEBUG" in output, "the worker really logged at DEBUG"
    assert bodies and phones
    body_lines = [line for b in bodies for line in b.splitlines() if len(line) > 20]
    assert_clean(output, ONCALL_EMAIL, *phones, *body_lines)
