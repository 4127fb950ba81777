"""Check-ins through the public commands: patient-local times across DST, quiet hours, tick."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.cli import Checkin
from tests.timeutil import local_iso, next_transitions


@pytest.fixture
def checkin(db_url: str) -> Checkin:
    return Checkin({"CHECKIN_DATABASE_URL": db_url})


def add_patient(checkin: Checkin, tz: str, *extra: str) -> int:
    pid = checkin.json(
        "patients",
        "add",
        "--name",
        "Pat Doe",
        "--phone",
        "+12125550101",
        "--tz",
        tz,
        "--channel",
        "sms",
        "--consent",
        "sms",
        *extra,
    )["id"]
    return int(pid)


@pytest.mark.parametrize("tz", ["America/New_York", "Europe/London", "Australia/Sydney"])
@pytest.mark.parametrize("change", ["spring", "fall"])
def test_a_nine_oclock_checkin_stays_at_nine_local_across_dst(
    checkin: Checkin, tz: str, change: str
) -> None:
    spring, fall = next_transitions(tz)
    day = spring if change == "spring" else fall
    pid = add_patient(checkin, tz)
    start = day - timedelta(days=2)
    checkin.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        "mood",
        "--rrule",
        "FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
        "--start",
        start.isoformat(),
    )
    items = checkin.json("preview", str(pid), "--days", "5", "--now", local_iso(start, 0, 0, tz))
    assert [i["local_time"][11:] for i in items] == ["09:00"] * 5
    offsets = {
        datetime.fromisoformat(i["due_at"]).astimezone(ZoneInfo(tz)).utcoffset() for i in items
    }
    assert len(offsets) == 2, "the five days straddle a change of UTC offset"
    # Sending: at 08:59 local nothing goes; at 09:00 local exactly one, every day.
    for n in range(5):
        d = start + timedelta(days=n)
        assert checkin.json("tick", "--now", local_iso(d, 8, 59, tz))["sent"] == 0
        assert checkin.json("tick", "--now", local_iso(d, 9, 0, tz))["sent"] == 1
    sent = [
        m for m in checkin.json("messages", "list", "--patient", str(pid)) if m["status"] == "sent"
    ]
    assert len(sent) == 5
    for m in sent:
        local = datetime.fromisoformat(m["sent_at"]).astimezone(ZoneInfo(tz))
        assert (local.hour, local.minute) == (9, 0)
        assert m["body"] and "Riverside" in m["body"]


def test_a_time_in_the_spring_gap_is_sent_once_at_the_first_valid_minute(checkin: Checkin) -> None:
    tz = "America/New_York"
    spring, _ = next_transitions(tz)
    pid = add_patient(checkin, tz, "--send-window", "00:00-24:00")
    checkin.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        "mood",
        "--rrule",
        "FREQ=DAILY;BYHOUR=2;BYMINUTE=30",
        "--start",
        spring.isoformat(),
    )
    items = checkin.json("preview", str(pid), "--days", "2", "--now", local_iso(spring, 0, 0, tz))
    on_the_day = [i for i in items if i["local_time"].startswith(spring.isoformat())]
    assert [i["local_time"][11:] for i in on_the_day] == ["03:00"]
    due = datetime.fromisoformat(on_the_day[0]["due_at"])
    assert due.astimezone(ZoneInfo(tz)).strftime("%H:%M %Z") == "03:00 EDT"
    total = 0
    for minute in range(0, 120, 15):  # ticks every 15 minutes from 02:00 to 03:45 local
        now = datetime.fromisoformat(local_iso(spring, 0, 0, tz)) + timedelta(
            hours=1, minutes=minute
        )
        total += checkin.json("tick", "--now", now.isoformat())["sent"]
    assert total == 1


def test_a_time_in_the_autumn_overlap_is_sent_once(checkin: Checkin) -> None:
    tz = "America/New_York"
    _, fall = next_transitions(tz)
    pid = add_patient(checkin, tz, "--send-window", "00:00-24:00")
    checkin.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        "mood",
        "--rrule",
        "FREQ=DAILY;BYHOUR=1;BYMINUTE=30",
        "--start",
        fall.isoformat(),
    )
    midnight = datetime.fromisoformat(local_iso(fall, 0, 0, tz))
    sent = 0
    for minutes in range(0, 4 * 60, 10):  # 00:00 to 04:00 local, both 01:xx hours included
        sent += checkin.json("tick", "--now", (midnight + timedelta(minutes=minutes)).isoformat())[
            "sent"
        ]
    assert sent == 1
    msgs = [
        m for m in checkin.json("messages", "list", "--patient", str(pid)) if m["status"] == "sent"
    ]
    assert len(msgs) == 1
    assert (
        datetime.fromisoformat(msgs[0]["sent_at"]).astimezone(ZoneInfo(tz)).strftime("%H:%M %Z")
        == "01:30 EDT"
    )


def test_quiet_hours_move_a_checkin_to_the_next_allowed_minute(checkin: Checkin) -> None:
    tz = "America/Chicago"
    day = datetime.now(ZoneInfo(tz)).date() + timedelta(days=3)
    pid = add_patient(checkin, tz, "--send-window", "08:30-20:00")
    checkin.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        "mood_pain",
        "--rrule",
        "FREQ=DAILY;BYHOUR=7,22;BYMINUTE=0",
        "--start",
        day.isoformat(),
    )
    items = checkin.json("preview", str(pid), "--days", "2", "--now", local_iso(day, 0, 0, tz))
    # 07:00 moves to 08:30 the same day; 22:00 to 08:30 the next day.
    assert [i["local_time"] for i in items][:3] == [
        f"{day}T08:30",
        f"{day + timedelta(days=1)}T08:30",
        f"{day + timedelta(days=1)}T08:30",
    ]
    assert checkin.json("tick", "--now", local_iso(day, 7, 0, tz))["sent"] == 0
    assert checkin.json("tick", "--now", local_iso(day, 8, 30, tz))["sent"] == 1


def test_a_paused_schedule_sends_nothing_and_resumes_from_now(checkin: Checkin) -> None:
    tz = "America/New_York"
    day = datetime.now(ZoneInfo(tz)).date() + timedelta(days=2)
    pid = add_patient(checkin, tz)
    sid = checkin.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        "pain",
        "--rrule",
        "FREQ=DAILY;BYHOUR=10;BYMINUTE=0",
        "--start",
        day.isoformat(),
    )["id"]
    assert checkin.json("tick", "--now", local_iso(day, 9, 0, tz))["planned"] >= 1
    assert checkin.json("schedules", "pause", str(sid))["status"] == "paused"
    assert checkin.json("tick", "--now", local_iso(day, 10, 0, tz))["sent"] == 0
    msgs = checkin.json("messages", "list", "--patient", str(pid))
    assert msgs and all(m["status"] == "cancelled" for m in msgs)
    assert checkin.json("schedules", "resume", str(sid))["status"] == "active"
    assert checkin.json("tick", "--now", local_iso(day + timedelta(days=1), 10, 0, tz))["sent"] == 1


def test_tick_twice_at_the_same_moment_sends_once(checkin: Checkin) -> None:
    tz = "Europe/London"
    day = datetime.now(ZoneInfo(tz)).date() + timedelta(days=2)
    pid = add_patient(checkin, tz)
    checkin.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        "sleep",
        "--rrule",
        "FREQ=DAILY;BYHOUR=9;BYMINUTE=15",
        "--start",
        day.isoformat(),
    )
    first = checkin.json("tick", "--now", local_iso(day, 9, 15, tz))
    second = checkin.json("tick", "--now", local_iso(day, 9, 15, tz))
    assert (first["sent"], second["sent"], second["planned"]) == (1, 0, 0)
