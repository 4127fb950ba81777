"""The whole pipeline with real processes: beat and a Celery worker on real Redis, the real
Twilio SDK talking to the emulator over HTTP. A worker killed with SIGKILL mid-batch and started
again ends with every message sent exactly once, counted at the emulator."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import func, select

from tests.conftest import make_settings
from worker.channels import Channels
from worker.emulator import TwilioEmulator
from worker.services.patients import add_patient
from worker.services.plan import plan
from worker.services.runtime import build_runtime
from worker.services.schedules import add_schedule
from worker.store.db import session_scope
from worker.store.models import Message

pytestmark = pytest.mark.slow

N = 1000
FROM = "+12125550000"


class Procs:
    """Child processes of one test; every one is killed at the end, whatever happened."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = (self.cwd / log).open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", *args],
            env=self.env,
            cwd=self.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.running.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(30)

    def close(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                self.kill(proc)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs({}, tmp_path)
    yield p
    p.close()


def seed_due(url: str, now: datetime) -> None:
    """N patients, each with a check-in whose occurrence was two minutes ago: N due rows."""
    from worker.channels.console import ConsoleEmail, ConsoleSms

    rt = build_runtime(make_settings(url), channels=Channels(ConsoleSms(), ConsoleEmail()))
    tz = "America/New_York"
    local = (now - timedelta(minutes=2)).astimezone(ZoneInfo(tz))
    with session_scope(rt.sessions) as session:
        for i in range(N):
            p = add_patient(
                session,
                now=now - timedelta(hours=1),
                name=f"P{i}",
                tz=tz,
                channel="sms",
                phone=f"+1212555{i:04d}",
                consent=["sms"],
                send_window="00:00-24:00",
            )
            add_schedule(
                session,
                p.id,
                now=now - timedelta(hours=1),
                instrument="mood",
                rrule=f"FREQ=DAILY;BYHOUR={local.hour};BYMINUTE={local.minute}",
                start=date(2020, 1, 1),
                until=local.date(),
            )
    assert plan(rt, now) == N
    rt.close()


def statuses(url: str) -> Counter[str]:
    from worker.channels.console import ConsoleEmail, ConsoleSms

    rt = build_runtime(make_settings(url), channels=Channels(ConsoleSms(), ConsoleEmail()))
    with session_scope(rt.sessions) as session:
        rows = session.execute(select(Message.status, func.count()).group_by(Message.status)).all()
    rt.close()
    return Counter({s: n for s, n in rows})


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(
    db_url: str, redis_url: str, procs: Procs, tmp_path: Path
) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    now = datetime.now(UTC)
    seed_due(db_url, now)
    with TwilioEmulator() as emulator:
        # Slow enough that the kill lands in the middle of the batch.
        emulator.configure(latency_ms=60)
        procs.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "CHECKIN_DATABASE_URL": db_url,
            "CHECKIN_BROKER_URL": redis_url,
            "CHECKIN_SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": emulator.account_sid,
            "TWILIO_AUTH_TOKEN": emulator.auth_token,
            "TWILIO_FROM_NUMBER": FROM,
            "TWILIO_API_URL": emulator.base_url,
            "CHECKIN_TWILIO_TIMEOUT_SECONDS": "2",
            "CHECKIN_TICK_SECONDS": "1",
            "CHECKIN_SEND_CONCURRENCY": "8",
            "CHECKIN_REQUEUE_AFTER_SECONDS": "15",
            "CHECKIN_SENDING_STALE_SECONDS": "8",
            "CHECKIN_BROKER_VISIBILITY_TIMEOUT": "30",
            "CHECKIN_CLINIC_NAME": "Riverside Pain & Wellness",
        }
        beat = procs.start("beat", "--schedule-file", str(tmp_path / "beat"), log="beat.log")
        worker = procs.start("worker", "-Q", "urgent,bulk", "-c", "4", "--name", "w1", log="w1.log")
        wait_for(
            lambda: emulator.stats()["accepted"] >= N // 4,
            90,
            "a quarter of the batch to be accepted",
        )
        procs.kill(worker)  # SIGKILL: no chance to finish or to acknowledge anything
        at_kill = emulator.stats()["accepted"]
        assert at_kill < N, "the kill must land mid-batch"
        procs.start("worker", "-Q", "urgent,bulk", "-c", "4", "--name", "w2", log="w2.log")
        wait_for(lambda: statuses(db_url)["sent"] == N, 180, f"all {N} messages to be sent")
        time.sleep(2)  # anything still in flight would show up now
        counts = emulator.count_by_to()
        sids = [m["sid"] for m in emulator.messages]
        procs.kill(beat, signal.SIGTERM)
    assert len(counts) == N, "every patient got their check-in"
    assert set(counts.values()) == {1}, "no patient got it twice"
    assert len(sids) == len(set(sids)) == N
    final = statuses(db_url)
    assert final == Counter({"sent": N}), final
    rt = build_runtime(make_settings(db_url), channels=Channels(None, None))  # type: ignore[arg-type]
    with session_scope(rt.sessions) as session:
        recorded = set(session.scalars(select(Message.provider_id)))
        reconciled = session.scalar(
            select(func.count()).where(Message.status_reason == "reconciled")
        )
    rt.close()
    assert recorded == set(sids), "each row holds the sid the provider gave it"
    print(
        f"\nkilled after {at_kill} of {N} accepted; {reconciled} found at the provider by "
        f"reconciliation; all {N} sent exactly once"
    )
