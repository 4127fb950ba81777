"""Two planners, or two dispatchers, at once: no duplicate rows, no message claimed twice."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from tests.conftest import make_settings
from worker.channels import Channels
from worker.services.outbound.dispatch import claim_due
from worker.services.outbound.plan import plan
from worker.services.records.patients import add_patient
from worker.services.records.schedules import add_schedule
from worker.services.runtime import build_runtime
from worker.store.db import session_scope
from worker.store.models import Message

PATIENTS = 300
ZONES = ["America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata"]


def seed(url: str, console: Channels, now: datetime) -> int:
    rt = build_runtime(make_settings(url), channels=console)
    with session_scope(rt.sessions) as session:
        for i in range(PATIENTS):
            p = add_patient(
                session,
                now=now - timedelta(days=1),
                name=f"P{i}",
                tz=ZONES[i % 4],
                channel="sms",
                phone=f"+1212555{i:04d}",
                consent=["sms"],
                confirm_optin=False,  # no opt-in text: not what this test counts
            )
            for rule in ("FREQ=DAILY;BYHOUR=9;BYMINUTE=0", "FREQ=DAILY;BYHOUR=19;BYMINUTE=30"):
                add_schedule(
                    session,
                    p.id,
                    now=now - timedelta(days=1),
                    instrument="mood",
                    rrule=rule,
                    start=date(2020, 1, 1),
                )
    rt.close()
    return PATIENTS * 2


def _plan_in_process(
    url: str, now_iso: str, barrier: mp.synchronize.Barrier, out: mp.Queue
) -> None:
    from worker.channels.console import ConsoleEmail, ConsoleSms

    rt = build_runtime(make_settings(url), channels=Channels(ConsoleSms(), ConsoleEmail()))
    barrier.wait()
    out.put(plan(rt, datetime.fromisoformat(now_iso)))
    rt.close()


def _claim_in_process(
    url: str, now_iso: str, barrier: mp.synchronize.Barrier, out: mp.Queue
) -> None:
    from worker.channels.console import ConsoleEmail, ConsoleSms

    rt = build_runtime(make_settings(url), channels=Channels(ConsoleSms(), ConsoleEmail()))
    barrier.wait()
    claimed: list[int] = []
    while batch := claim_due(rt, datetime.fromisoformat(now_iso), 50):
        claimed += [mid for mid, _ in batch]
    out.put(claimed)
    rt.close()


def run_two(target: object, url: str, now: datetime) -> list[object]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(url, now.isoformat(), barrier, out)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return results


def test_two_planners_at_once_create_no_duplicate_rows(db_url: str, console: Channels) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    schedules = seed(db_url, console, now)
    added = run_two(_plan_in_process, db_url, now)
    rt = build_runtime(make_settings(db_url), channels=console)
    with session_scope(rt.sessions) as session:
        rows = session.scalar(select(func.count(Message.id)))
        keys = session.scalar(select(func.count(func.distinct(Message.dedupe_key))))
    # Between 1 and 2 days' worth per schedule (whatever the clock says), each exactly once.
    assert rows == keys == sum(added)
    assert schedules * 2 <= rows <= schedules * 3
    assert plan(rt, now) == 0, "a third run adds nothing"
    rt.close()


def test_two_dispatchers_at_once_never_claim_the_same_message(
    db_url: str, console: Channels
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    seed(db_url, console, now)
    rt = build_runtime(make_settings(db_url), channels=console)
    plan(rt, now)
    later = now + timedelta(days=2)
    with session_scope(rt.sessions) as session:
        due = session.scalar(select(func.count(Message.id)).where(Message.due_at <= later))
    rt.close()
    a, b = run_two(_claim_in_process, db_url, later)
    assert isinstance(a, list) and isinstance(b, list)
    assert not set(a) & set(b)
    assert len(a) + len(b) == due
