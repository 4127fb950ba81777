"""Reminders follow their appointment; consent is checked at planning and at send time."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.cli import Checkin
from tests.timeutil import local_iso

TZ = "America/New_York"


@pytest.fixture
def checkin(db_url: str) -> Checkin:
    return Checkin({"CHECKIN_DATABASE_URL": db_url})


def future_day(days: int) -> date:
    return datetime.now(ZoneInfo(TZ)).date() + timedelta(days=days)


def patient(checkin: Checkin, *extra: str) -> int:
    return int(
        checkin.json(
            "patients",
            "add",
            "--name",
            "Jo Park",
            "--phone",
            "+12125550102",
            "--email",
            "jo@example.org",
            "--tz",
            TZ,
            "--channel",
            "sms",
            *extra,
        )["id"]
    )


def tick_hourly(checkin: Checkin, start: date, days: int, every: int = 15) -> dict[str, int]:
    """A tick every `every` minutes for `days` days from local midnight of `start`."""
    total: dict[str, int] = {}
    t = datetime.fromisoformat(local_iso(start, 0, 0, TZ))
    for _ in range(days * 24 * 60 // every):
        for k, v in checkin.json("tick", "--now", t.isoformat()).items():
            total[k] = total.get(k, 0) + v
        t += timedelta(minutes=every)
    return total


def sent_templates(checkin: Checkin, pid: int) -> list[tuple[str, str]]:
    return sorted(
        (m["template"], m["sent_at"])
        for m in checkin.json("messages", "list", "--patient", str(pid), "--limit", "500")
        if m["status"] == "sent"
    )


def test_an_infusion_gets_72_24_2_hour_reminders_and_the_evening_prep(checkin: Checkin) -> None:
    pid = patient(checkin, "--consent", "sms")
    appt_day = future_day(5)
    checkin.json(
        "appointments",
        "add",
        str(pid),
        "--kind",
        "infusion",
        "--at",
        f"{appt_day}T14:00",
        "--location",
        "Suite 200",
    )
    items = checkin.json("preview", str(pid), "--days", "10")
    assert [(i["template"], i["local_time"]) for i in items] == [
        ("reminder_infusion", f"{appt_day - timedelta(days=3)}T14:00"),
        ("reminder_infusion", f"{appt_day - timedelta(days=1)}T14:00"),
        ("infusion_prep", f"{appt_day - timedelta(days=1)}T18:00"),
        ("reminder_infusion", f"{appt_day}T12:00"),
    ]
    # First tick on the day itself (as after an outage): only the 2 h reminder is still useful.
    result = checkin.json("tick", "--now", local_iso(appt_day, 12, 0, TZ))
    assert (result["sent"], result["suppressed"]) == (1, 3)
    [sent] = [
        m for m in checkin.json("messages", "list", "--patient", str(pid)) if m["status"] == "sent"
    ]
    assert sent["template"] == "reminder_infusion"
    assert "2:00 PM" in sent["body"] and "Riverside" in sent["body"]
    assert "CANCEL" not in sent["body"].upper().replace("X TO CANCEL", "")


def test_a_rescheduled_appointments_old_reminders_never_go_and_new_ones_do(
    checkin: Checkin,
) -> None:
    pid = patient(checkin, "--consent", "sms")
    # Far enough ahead that, whatever the time of day now, both the 72 h and the 24 h
    # reminders are still ahead of the first tick (a planned reminder already too late would
    # be suppressed, not scheduled).
    first, moved = future_day(5), future_day(8)
    aid = checkin.json(
        "appointments", "add", str(pid), "--kind", "therapy", "--at", f"{first}T15:00"
    )["id"]
    # The planner materialises the 72 h and 24 h reminders (inside its 48 h horizon).
    checkin.json("tick", "--now", local_iso(first - timedelta(days=3), 9, 0, TZ))
    planned = checkin.json("messages", "list", "--patient", str(pid))
    assert planned and all(m["status"] == "scheduled" for m in planned)
    checkin.json("appointments", "reschedule", str(aid), "--at", f"{moved}T10:30")
    after = checkin.json("messages", "list", "--patient", str(pid))
    assert all(m["status"] == "cancelled" for m in after)
    # Every 30 minutes: the reminders are due at :30, so each goes out at its own minute, and
    # 9 days of ticks stay at 432 (the slowest test of the suite at every 15 minutes).
    tick_hourly(checkin, first - timedelta(days=3), 9, every=30)
    sent = sent_templates(checkin, pid)
    locals_ = [
        datetime.fromisoformat(at).astimezone(ZoneInfo(TZ)).strftime("%Y-%m-%dT%H:%M")
        for _, at in sent
    ]
    assert locals_ == [
        f"{moved - timedelta(days=3)}T10:30",
        f"{moved - timedelta(days=1)}T10:30",
        f"{moved}T08:30",
    ]
    bodies = [
        m["body"]
        for m in checkin.json("messages", "list", "--patient", str(pid))
        if m["status"] == "sent"
    ]
    assert all("10:30" in b for b in bodies), bodies


def test_a_cancelled_appointment_sends_no_reminder(checkin: Checkin) -> None:
    pid = patient(checkin, "--consent", "sms")
    day = future_day(2)
    aid = checkin.json(
        "appointments", "add", str(pid), "--kind", "consult", "--at", f"{day}T11:00"
    )["id"]
    checkin.json("tick", "--now", local_iso(day - timedelta(days=1), 9, 0, TZ))
    checkin.json("appointments", "cancel", str(aid))
    totals = tick_hourly(checkin, day - timedelta(days=1), 2)
    assert totals["sent"] == 0
    assert sent_templates(checkin, pid) == []


def test_a_patient_without_consent_gets_nothing_and_the_row_says_why(checkin: Checkin) -> None:
    pid = patient(checkin)  # no --consent
    day = future_day(2)
    checkin.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        "mood",
        "--rrule",
        "FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
        "--start",
        day.isoformat(),
    )
    assert checkin.json("preview", str(pid), "--days", "3") == []
    result = checkin.json("tick", "--now", local_iso(day, 9, 0, TZ))
    assert (result["sent"], result["suppressed"]) == (0, 1)
    [row] = [
        m
        for m in checkin.json("messages", "list", "--patient", str(pid))
        if m["status"] != "scheduled"
    ]
    assert (row["status"], row["status_reason"]) == ("suppressed", "no_consent_sms")


def test_consent_withdrawn_after_planning_suppresses_and_regranting_resumes(
    checkin: Checkin,
) -> None:
    pid = patient(checkin, "--consent", "sms")
    day = future_day(2)
    checkin.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        "pain",
        "--rrule",
        "FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
        "--start",
        day.isoformat(),
    )
    checkin.json("tick", "--now", local_iso(day, 8, 0, TZ))
    withdrawn = checkin.json(
        "patients",
        "consent",
        str(pid),
        "--channel",
        "sms",
        "--withdraw",
        "--source",
        "patient phoned",
    )
    assert withdrawn["suppressed"] >= 1 and withdrawn["consent"]["sms"]["granted"] is False
    assert checkin.json("tick", "--now", local_iso(day, 9, 0, TZ))["sent"] == 0
    rows = checkin.json("messages", "list", "--patient", str(pid))
    assert {(m["status"], m["status_reason"]) for m in rows} == {
        ("suppressed", "consent_withdrawn")
    }
    checkin.json("patients", "consent", str(pid), "--channel", "sms", "--source", "patient asked")
    assert checkin.json("tick", "--now", local_iso(day + timedelta(days=1), 9, 0, TZ))["sent"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--phone", "+1555"], "invalid phone"),
        (["--phone", "not a number"], "invalid phone"),
        (["--phone", "+12125550101", "--email", "nobody@"], "invalid email"),
        (["--phone", "+12125550101", "--tz", "Mars/Olympus"], "time zone"),
        (["--phone", "+12125550101", "--send-window", "25:00-08:00"], "send window"),
        (["--phone", "+12125550101", "--language", "fr"], "language"),
        (["--phone", "+12125550101", "--consent", "fax"], "consent"),
        (["--channel", "email"], "an email address is required for the email channel (--email)"),
    ],
)
def test_bad_patient_input_is_refused_and_writes_nothing(
    checkin: Checkin, args: list[str], message: str
) -> None:
    base = {"--name": "X", "--tz": TZ, "--channel": "sms"}
    merged = dict(base)
    it = iter(args)
    for flag in it:
        merged[flag] = next(it)
    argv = [x for kv in merged.items() for x in kv]
    err = checkin.fails("patients", "add", *argv)
    assert message in err
    assert checkin.json("patients", "list") == []


@pytest.mark.parametrize(
    ("rrule", "instrument"),
    [
        ("garbage", "mood"),
        ("FREQ=HOURLY;BYHOUR=9", "mood"),
        ("FREQ=DAILY", "mood"),
        ("FREQ=DAILY;BYHOUR=25", "mood"),
        ("FREQ=DAILY;BYHOUR=9", "phq9"),
        ("FREQ=WEEKLY;BYHOUR=9", "unknown_instrument"),
    ],
)
def test_bad_schedules_are_refused_and_write_nothing(
    checkin: Checkin, rrule: str, instrument: str
) -> None:
    pid = patient(checkin, "--consent", "sms")
    err = checkin.fails("schedules", "add", str(pid), "--instrument", instrument, "--rrule", rrule)
    assert err.startswith("error: ")
    assert checkin.json("schedules", "list", str(pid)) == []


@pytest.mark.parametrize(
    "at", ["2026-13-01T10:00", "tomorrow", "2020-01-01T10:00", "2030-01-01 10:00"]
)
def test_bad_appointment_times_are_refused(checkin: Checkin, at: str) -> None:
    pid = patient(checkin, "--consent", "sms")
    err = checkin.fails("appointments", "add", str(pid), "--kind", "infusion", "--at", at)
    assert err.startswith("error: ")
    assert checkin.json("appointments", "list") == []


def test_unknown_ids_and_protocols_are_refused(checkin: Checkin) -> None:
    assert "no patient" in checkin.fails("schedules", "list", "999")
    pid = patient(checkin)
    assert "unknown protocol" in checkin.fails(
        "enroll", str(pid), "no-such-protocol", "--start", "2030-01-01"
    )
    assert "--start" in checkin.fails(
        "enroll", str(pid), "ketamine-induction", "--start", "01/02/2030"
    )


def test_enrolling_in_a_protocol_creates_its_schedules(checkin: Checkin) -> None:
    pid = patient(checkin, "--consent", "sms")
    names = {p["name"] for p in checkin.json("protocols", "list")}
    assert {"ketamine-induction", "ketamine-maintenance", "therapy-weekly", "pain-weekly"} <= names
    start = future_day(1)
    result = checkin.json("enroll", str(pid), "ketamine-induction", "--start", start.isoformat())
    schedules = checkin.json("schedules", "list", str(pid))
    assert len(schedules) == len(result["schedules"]) >= 4
    assert {s["instrument"] for s in schedules} >= {"phq9", "gad7", "peg", "mood_pain"}
    items = checkin.json("preview", str(pid), "--days", "3", "--now", local_iso(start, 0, 0, TZ))
    assert {i["instrument"] for i in items} >= {"phq9", "gad7", "peg", "mood_pain"}
    shown = checkin.json("patients", "show", str(pid))
    assert shown["next_messages"] and shown["consent"]["sms"]["granted"] is True
