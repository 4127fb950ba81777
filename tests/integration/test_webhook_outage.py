"""Status callbacks while the database is down, as inbound replies already were: Twilio does not
retry a status callback answered 5xx (only failed connections, only with connection overrides,
within 15 s), so the web app hands it to the broker (`checkin.status_unapplied` on the bulk
queue) and a worker applies it once the database answers. A carrier opt-out (21610) is the one
that must not be lost: it withdraws SMS consent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from checkin_emulator import TwilioEmulator
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tests.conftest import make_settings
from tests.integration.clinic import open_clinic
from tests.integration.procs import Procs, base_env, wait_for
from tests.integration.test_replies import PHONE, send_checkin
from worker.services.records.patients import has_consent
from worker.services.runtime import build_runtime
from worker.store.db import session_scope
from worker.store.models import Message
from worker.web.webhooks import STATUS_PATH


def _sent_checkin(db_url: str, emulator: TwilioEmulator, smtp: Any) -> tuple[int, str]:
    """A patient with a check-in sent through the emulator: (patient id, provider sid)."""
    clinic = open_clinic(db_url, emulator, smtp)
    try:
        pid = clinic.patient(PHONE, "--send-window", "00:00-24:00")
        send_checkin(clinic, pid, "mood")
        [msg] = [
            m
            for m in clinic.cli.json("messages", "list", "--patient", str(pid))
            if m["status"] == "sent"
        ]
    finally:
        clinic.close()
    return pid, str(msg["provider_id"])


def _state(db_url: str, pid: int, sid: str) -> tuple[str, str | None, bool]:
    """(message status, error code, SMS consent still open)."""
    rt = build_runtime(make_settings(db_url))
    try:
        with session_scope(rt.sessions) as session:
            msg = session.scalar(select(Message).where(Message.provider_id == sid))
            assert msg is not None
            return msg.status, msg.error_code, has_consent(session, pid, "sms")
    finally:
        rt.close()


def test_without_a_broker_a_status_callback_the_database_cannot_take_gets_503(
    twilio_emulator: TwilioEmulator, smtp_server: Any, closed_port: int
) -> None:
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/nowhere"
    clinic = open_clinic(unreachable, twilio_emulator, smtp_server)
    try:
        url = clinic.base_url + STATUS_PATH
        assert twilio_emulator.send_status(url, "SM" + "1" * 32, "delivered").status_code == 503
    finally:
        clinic.close()


@pytest.mark.slow
def test_with_a_broker_a_status_callback_the_database_cannot_take_is_applied_later(
    sqlite_url: str,
    redis_url: str,
    twilio_emulator: TwilioEmulator,
    smtp_server: Any,
    closed_port: int,
    tmp_path: Path,
) -> None:
    """The web app cannot reach the database (its URL points nowhere); the broker keeps the
    carrier opt-out, and a bulk worker that can reach the database applies it."""
    import redis as redis_client

    redis_client.Redis.from_url(redis_url).flushdb()
    pid, sid = _sent_checkin(sqlite_url, twilio_emulator, smtp_server)
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/nowhere"
    web = open_clinic(
        unreachable, twilio_emulator, smtp_server, celery=True, CHECKIN_BROKER_URL=redis_url
    )
    procs = Procs(base_env(tmp_path, sqlite_url, redis_url, twilio_emulator), tmp_path)
    try:
        answer = twilio_emulator.send_status(web.base_url + STATUS_PATH, sid, "undelivered", 21610)
        assert answer.status_code == 200
        procs.start("worker", "-Q", "bulk", "-c", "2", "--name", "b", log="b.log")
        wait_for(lambda: _state(sqlite_url, pid, sid)[0] == "undelivered", 60, "the status applied")
    finally:
        procs.close()
        web.close()
    assert _state(sqlite_url, pid, sid) == ("undelivered", "21610", False)


@pytest.mark.slow
def test_a_status_callback_while_the_database_is_cut_off_is_applied_once_it_is_back(
    pg_url: str,
    redis_url: str,
    twilio_emulator: TwilioEmulator,
    smtp_server: Any,
    tmp_path: Path,
) -> None:
    """The database goes away for the web app and the worker alike (every connection through
    the fault suite's proxy dropped, new ones refused); the callback is answered 200, the
    worker's first attempts fail and are retried, and once the database is back it is applied."""
    import redis as redis_client

    from tests.faults.harness import TcpProxy

    redis_client.Redis.from_url(redis_url).flushdb()
    pid, sid = _sent_checkin(pg_url, twilio_emulator, smtp_server)
    server = make_url(pg_url)
    proxy = TcpProxy(server.host or "127.0.0.1", server.port or 5432)
    proxied = proxy.url_for(pg_url)
    web = open_clinic(
        proxied, twilio_emulator, smtp_server, celery=True, CHECKIN_BROKER_URL=redis_url
    )
    procs = Procs(base_env(tmp_path, proxied, redis_url, twilio_emulator), tmp_path)
    log = tmp_path / "b.log"
    try:
        proxy.cut()
        answer = twilio_emulator.send_status(web.base_url + STATUS_PATH, sid, "undelivered", 21610)
        assert answer.status_code == 200
        procs.start("worker", "-Q", "bulk", "-c", "2", "--name", "b", log="b.log")
        wait_for(lambda: "Retry in" in log.read_text(errors="replace"), 60, "a failed attempt")
        assert _state(pg_url, pid, sid) == ("sent", None, True)
        proxy.restore()
        wait_for(lambda: _state(pg_url, pid, sid)[0] == "undelivered", 60, "the status applied")
    finally:
        procs.close()
        web.close()
        proxy.close()
    assert _state(pg_url, pid, sid) == ("undelivered", "21610", False)
