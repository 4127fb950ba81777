"""A clinic's own protocol files: loaded beside the shipped ones; a bad one is refused clearly."""

from __future__ import annotations

from pathlib import Path

from tests.cli import Checkin

GOOD = """\
name: pain-daily
title: Daily pain for a fortnight
steps:
  - instrument: pain
    rrule: FREQ=DAILY;BYHOUR=18;BYMINUTE=0
    days: 14
"""

BAD = """\
name: broken
title: Broken on purpose
steps:
  - instrument: pain
    rrule: FREQ=HOURLY;BYHOUR=18
"""


def test_a_clinic_protocol_file_is_listed_and_can_be_enrolled_in(
    sqlite_url: str, tmp_path: Path
) -> None:
    (tmp_path / "pain-daily.yaml").write_text(GOOD)
    checkin = Checkin({"CHECKIN_DATABASE_URL": sqlite_url, "CHECKIN_PROTOCOLS_DIR": str(tmp_path)})
    assert "pain-daily" in {p["name"] for p in checkin.json("protocols", "list")}
    pid = checkin.json(
        "patients",
        "add",
        "--name",
        "A",
        "--phone",
        "+12125550101",
        "--tz",
        "America/New_York",
        "--channel",
        "sms",
    )["id"]
    result = checkin.json("enroll", str(pid), "pain-daily", "--start", "2030-01-01")
    [schedule] = checkin.json("schedules", "list", str(pid))
    assert schedule["id"] == result["schedules"][0] and schedule["until"] == "2030-01-14"


def test_a_malformed_protocol_file_is_refused_with_file_line_and_reason(
    sqlite_url: str, tmp_path: Path
) -> None:
    (tmp_path / "broken.yaml").write_text(BAD)
    checkin = Checkin({"CHECKIN_DATABASE_URL": sqlite_url, "CHECKIN_PROTOCOLS_DIR": str(tmp_path)})
    err = checkin.fails("protocols", "list")
    assert "broken.yaml:5" in err and "HOURLY" in err
    pid = checkin.json(
        "patients",
        "add",
        "--name",
        "A",
        "--phone",
        "+12125550101",
        "--tz",
        "America/New_York",
        "--channel",
        "sms",
    )["id"]
    assert "broken.yaml" in checkin.fails(
        "enroll", str(pid), "ketamine-induction", "--start", "2030-01-01"
    )
    assert checkin.json("schedules", "list", str(pid)) == []
