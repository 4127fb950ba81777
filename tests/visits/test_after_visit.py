"""The check-in the day after an infusion: planned by the database, sent once, read with care."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import make_settings
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.services.inbound.receive import process_inbound, receive_sms
from worker.services.outbound.plan import plan
from worker.services.outbound.send_now import send_now
from worker.services.records.appointments import add_appointment, cancel, reschedule
from worker.services.records.patients import add_patient
from worker.services.records.schedules import enroll
from worker.services.records.visits import mark_attended, mark_no_show
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import session_scope
from worker.store.models import FollowUp, Message, Response
from worker.tick import tick

TZ = "America/New_York"
PHONE = "+12125550177"
# An infusion on Tue 10 March 2026, 14:00 in New York (18:00 UTC); the day after at 10:00 local
# is 14:00 UTC.
VISIT = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)
DAY_AFTER = datetime(2026, 3, 11, 14, 0, tzinfo=UTC)
PROTOCOL = """\
name: infusion-follow
title: Infusions, with a check-in the day after
steps:
  - instrument: sleep
    rrule: FREQ=WEEKLY;BYHOUR=9;BYMINUTE=0
after_visit:
  kinds: [infusion]
  send_at: "{send_at}"
  low: 4
"""


def runtime_with(db_url: str, tmp_path: Path, send_at: str = "10:00", **kw: object) -> Runtime:
    folder = tmp_path / "protocols"
    folder.mkdir(exist_ok=True)
    (folder / "infusion-follow.yaml").write_text(PROTOCOL.format(send_at=send_at))
    channels = Channels(sms=ConsoleSms(io.StringIO()), email=ConsoleEmail(io.StringIO()))
    return build_runtime(make_settings(db_url, protocols_dir=str(folder), **kw), channels=channels)


@pytest.fixture
def vrt(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = runtime_with(db_url, tmp_path)
    yield rt
    rt.close()


def booked(rt: Runtime, kind: str = "infusion", language: str = "en") -> tuple[int, int]:
    with session_scope(rt.sessions) as s:
        p = add_patient(
            s, now=VISIT - timedelta(days=9), name="Dee", tz=TZ, channel="sms", phone=PHONE,
            consent=["sms"], language=language, confirm_optin=False,
        )  # fmt: skip
        enroll(
            s, p.id, rt.protocols["infusion-follow"], start=date(2026, 3, 1),
            now=VISIT - timedelta(days=9),
        )  # fmt: skip
        a = add_appointment(
            s, p.id, now=VISIT - timedelta(days=7), kind=kind, at="", starts_at=VISIT
        )
        return p.id, a.id


def after_visit_rows(rt: Runtime) -> list[Message]:
    with session_scope(rt.sessions) as s:
        rows = list(s.scalars(select(Message).where(Message.template == "after_visit")))
        s.expunge_all()
        return rows


def texts(rt: Runtime) -> list[str]:
    assert isinstance(rt.channels.sms, ConsoleSms)
    return [r.body for r in rt.channels.sms.sent]


def reply(rt: Runtime, body: str, at: datetime, sid: str = "SM1") -> str:
    inbound_id, _ = receive_sms(rt, sid=sid, from_=PHONE, to=None, body=body, now=at)
    outcome = process_inbound(rt, inbound_id, at)
    send_now(rt, outcome.send, at)
    return outcome.outcome


def followups(rt: Runtime, pid: int) -> list[tuple[str, dict[str, object]]]:
    with session_scope(rt.sessions) as s:
        return [
            (f.reason, dict(f.detail))
            for f in s.scalars(select(FollowUp).where(FollowUp.patient_id == pid))
        ]


def test_it_is_planned_once_for_the_day_after_at_the_protocols_time(vrt: Runtime) -> None:
    booked(vrt)
    plan(vrt, VISIT - timedelta(hours=1))
    plan(vrt, VISIT)  # again: nothing new
    [row] = after_visit_rows(vrt)
    assert (row.due_at, row.local_time, row.instrument) == (DAY_AFTER, "2026-03-11T10:00", "mood")
    assert row.dedupe_key.endswith(":v1") and row.status == "scheduled"


def test_a_therapy_visit_or_a_protocol_without_it_gets_none(vrt: Runtime) -> None:
    booked(vrt, kind="therapy")
    plan(vrt, VISIT)
    assert after_visit_rows(vrt) == []


def test_it_is_sent_as_one_plain_segment(vrt: Runtime) -> None:
    booked(vrt)
    tick(vrt, VISIT)
    tick(vrt, DAY_AFTER)
    [body] = [b for b in texts(vrt) if "feeling" in b]
    assert body == (
        "Riverside Pain & Wellness: how are you feeling today, 0-10 (10 = very good)? "
        "Reply with anything you want us to know."
    )


@pytest.mark.parametrize(
    ("answer", "stored", "clinician"),
    [
        ("8", 8, False),
        ("7/10", 7, False),
        ("4", 4, True),  # the protocol's low is 4
        ("8 but still a bit dizzy", 8, True),
        ("not great, can someone call me", None, True),
    ],
)
def test_low_answers_and_any_words_go_to_a_clinician(
    vrt: Runtime, answer: str, stored: int | None, clinician: bool
) -> None:
    pid, appt = booked(vrt)
    tick(vrt, VISIT)
    tick(vrt, DAY_AFTER)
    reply(vrt, answer, DAY_AFTER + timedelta(hours=1))
    with session_scope(vrt.sessions) as s:
        values = [r.value for r in s.scalars(select(Response).where(Response.patient_id == pid))]
    assert values == ([] if stored is None else [stored])
    visit_items = [d for reason, d in followups(vrt, pid) if reason == "after_visit"]
    assert bool(visit_items) is clinician
    if clinician:
        [evidence] = visit_items[0]["evidence"]  # type: ignore[misc]
        assert evidence["appointment_id"] == appt and evidence["value"] == stored
        # The patient's words stay in the inbound message, never copied into the follow-up.
        assert evidence["words"] is (len(answer) > 4) and "dizzy" not in str(visit_items[0])
    assert texts(vrt)[-1].startswith("Riverside Pain & Wellness: Thank")


def test_crisis_words_take_the_crisis_path_not_the_after_visit_one(vrt: Runtime) -> None:
    pid, _ = booked(vrt)
    tick(vrt, VISIT)
    tick(vrt, DAY_AFTER)
    reply(vrt, "2, I want to end my life", DAY_AFTER + timedelta(hours=1))
    reasons = {reason for reason, _ in followups(vrt, pid)}
    assert "crisis_language" in reasons and "after_visit" not in reasons
    assert "988" in texts(vrt)[-1] or any("988" in t for t in texts(vrt)[-3:])


def test_a_cancelled_visit_gets_no_check_in(vrt: Runtime) -> None:
    _, first = booked(vrt)
    tick(vrt, VISIT - timedelta(days=1))
    with session_scope(vrt.sessions) as s:
        cancel(s, first, now=VISIT - timedelta(hours=3))
    tick(vrt, VISIT)
    tick(vrt, DAY_AFTER)
    assert [r.status for r in after_visit_rows(vrt)] == ["cancelled"]
    assert not [t for t in texts(vrt) if "feeling" in t]


def test_a_no_show_cancels_the_planned_check_in_and_attended_keeps_it(
    db_url: str, tmp_path: Path
) -> None:
    rt = runtime_with(db_url, tmp_path)
    try:
        _, appt = booked(rt)
        plan(rt, VISIT)
        with session_scope(rt.sessions) as s:
            mark_no_show(s, appt, now=VISIT + timedelta(hours=2), actor="t", source="t")
        tick(rt, DAY_AFTER)
        assert [r.status for r in after_visit_rows(rt)] == ["cancelled"]
    finally:
        rt.close()


def test_attended_visits_still_get_it(vrt: Runtime) -> None:
    _, appt = booked(vrt)
    with session_scope(vrt.sessions) as s:
        mark_attended(s, appt, now=VISIT + timedelta(hours=2), actor="t")
    tick(vrt, VISIT + timedelta(hours=2))
    tick(vrt, DAY_AFTER)
    assert [r.status for r in after_visit_rows(vrt)] == ["sent"]


def test_a_rescheduled_visit_gets_it_the_day_after_the_new_time(vrt: Runtime) -> None:
    _, appt = booked(vrt)
    plan(vrt, VISIT - timedelta(hours=12))
    with session_scope(vrt.sessions) as s:
        reschedule(s, appt, now=VISIT - timedelta(hours=12), at="2026-03-12T09:00")
    plan(vrt, datetime(2026, 3, 12, 12, 0, tzinfo=UTC))
    rows = sorted(after_visit_rows(vrt), key=lambda m: m.id)
    assert [(r.status, r.local_time) for r in rows] == [
        ("cancelled", "2026-03-11T10:00"),
        ("scheduled", "2026-03-13T10:00"),
    ]


def test_a_send_time_in_quiet_hours_moves_into_the_window(db_url: str, tmp_path: Path) -> None:
    rt = runtime_with(db_url, tmp_path, send_at="06:30")
    try:
        booked(rt)
        plan(rt, VISIT)
        [row] = after_visit_rows(rt)
        assert row.due_at == datetime(2026, 3, 11, 12, 0, tzinfo=UTC)  # 08:00 in New York
    finally:
        rt.close()


def test_spanish_patients_get_it_in_spanish(vrt: Runtime) -> None:
    booked(vrt, language="es")
    tick(vrt, VISIT)
    tick(vrt, DAY_AFTER)
    assert any("Qué tal se siente hoy, del 0 al 10" in t for t in texts(vrt))


def test_preview_shows_the_check_in_the_day_after(vrt: Runtime) -> None:
    from worker.services.outbound.preview import preview

    pid, appointment = booked(vrt)
    items = preview(vrt, pid, VISIT - timedelta(days=1), days=3)
    [day_after] = [
        i for i in items if i.spec.appointment_id == appointment and i.spec.kind == "checkin"
    ]
    assert (day_after.spec.due_at, day_after.template, day_after.segments) == (
        DAY_AFTER,
        "after_visit",
        1,
    )
    # Once it has gone, the preview no longer lists it.
    plan(vrt, DAY_AFTER - timedelta(hours=1))
    tick(vrt, DAY_AFTER)
    assert [r.status for r in after_visit_rows(vrt)] == ["sent"]
    later = preview(vrt, pid, DAY_AFTER - timedelta(hours=1), days=3)
    assert [i for i in later if i.spec.template == "after_visit"] == []
