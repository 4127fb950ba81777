"""Real child processes for integration tests (beat, workers), and helpers to seed and watch."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from tests.conftest import make_settings
from worker.channels import Channels
from worker.services.outbound.plan import plan
from worker.services.records.patients import add_patient
from worker.services.records.schedules import add_schedule
from worker.services.runtime import build_runtime
from worker.store.db import session_scope
from worker.store.models import Message


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


def base_env(tmp_path: Path, db_url: str, redis_url: str, emulator: object) -> dict[str, str]:
    """The environment of a real worker/beat talking to the emulator through the real SDK."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CHECKIN_DATABASE_URL": db_url,
        "CHECKIN_BROKER_URL": redis_url,
        "CHECKIN_SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": emulator.account_sid,  # type: ignore[attr-defined]
        "TWILIO_AUTH_TOKEN": emulator.auth_token,  # type: ignore[attr-defined]
        "TWILIO_FROM_NUMBER": "+12125550000",
        "TWILIO_API_URL": emulator.base_url,  # type: ignore[attr-defined]
        "CHECKIN_TWILIO_TIMEOUT_SECONDS": "2",
        "CHECKIN_TICK_SECONDS": "1",
        "CHECKIN_CLINIC_NAME": "Riverside Pain & Wellness",
        # Consent texts have tests of their own (tests/consent/).
        "CHECKIN_OPTIN_CONFIRMATION": "0",
        "CHECKIN_STOP_REMINDER": "off",
        # Paced (the shared limiter runs), but far above what these tests send per second.
        "CHECKIN_SMS_RATE": "1000",
        # Required outside development (`checkin web`/`run` refuse to start without it).
        "CHECKIN_SECRET_KEY": "test-secret-key-0123456789abcdef",
    }


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs({}, tmp_path)
    yield p
    p.close()


def seed_due(url: str, now: datetime, n: int, first_phone: int = 0) -> None:
    """n patients, each with a check-in whose occurrence was two minutes ago: n due rows."""
    from worker.channels.console import ConsoleEmail, ConsoleSms

    rt = build_runtime(make_settings(url), channels=Channels(ConsoleSms(), ConsoleEmail()))
    tz = "America/New_York"
    local = (now - timedelta(minutes=2)).astimezone(ZoneInfo(tz))
    with session_scope(rt.sessions) as session:
        for i in range(first_phone, first_phone + n):
            p = add_patient(
                session,
                now=now - timedelta(hours=1),
                name=f"P{i}",
                tz=tz,
                channel="sms",
                phone=f"+1212555{i:04d}",
                consent=["sms"],
                confirm_optin=False,  # no opt-in text: not what this test counts
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
    assert plan(rt, now) == n
    rt.close()


def statuses(url: str) -> Counter[str]:
    from worker.channels.console import ConsoleEmail, ConsoleSms

    rt = build_runtime(make_settings(url), channels=Channels(ConsoleSms(), ConsoleEmail()))
    with session_scope(rt.sessions) as session:
        rows = session.execute(select(Message.status, func.count()).group_by(Message.status)).all()
    rt.close()
    return Counter({s: n for s, n in rows})


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """A worker's metrics endpoint, read over HTTP: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)
