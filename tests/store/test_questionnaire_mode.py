"""questionnaire_mode on the command line, and what `checkin preview` says each mode costs: a
questionnaire by link is one segment; one item per text is every item added up (a PHQ-9 is 13
segments in English, more in Spanish, whose published wording needs UCS-2)."""

from __future__ import annotations

import pytest

from tests.cli import Checkin

NOW = "2027-03-08T12:00:00+00:00"  # a Monday; the schedule below fires on Tuesdays


def patient(cli: Checkin, *extra: str) -> int:
    return int(
        cli.json(
            "patients",
            "add",
            "--name",
            "Pat Doe",
            "--phone",
            "+12125550143",
            "--tz",
            "America/New_York",
            "--channel",
            "sms",
            "--consent",
            "sms",
            *extra,
        )["id"]
    )


def weekly(cli: Checkin, pid: int, instrument: str) -> None:
    cli.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        instrument,
        "--rrule",
        "FREQ=WEEKLY;BYDAY=TU;BYHOUR=10;BYMINUTE=0",
        "--start",
        "2027-03-01",
    )


def costs(cli: Checkin, pid: int) -> list[tuple[str, int | None]]:
    rows = cli.json("preview", str(pid), "--days", "7", "--now", NOW)
    return [(r["template"], r["segments"]) for r in rows]


@pytest.fixture
def cli(sqlite_url: str) -> Checkin:
    return Checkin({"CHECKIN_DATABASE_URL": sqlite_url})


def test_a_questionnaire_by_link_costs_one_segment_by_default(cli: Checkin) -> None:
    pid = patient(cli)
    assert cli.json("patients", "show", str(pid))["questionnaire_mode"] == "link"
    weekly(cli, pid, "phq9")
    weekly(cli, pid, "mood_pain")
    assert sorted(costs(cli, pid)) == [("checkin_link", 1), ("checkin_mood_pain", 1)]


@pytest.mark.parametrize(
    ("language", "phq9", "gad7"), [("en", 13, 8), ("es", 28, 19)], ids=["en", "es"]
)
def test_one_item_per_text_shows_its_honest_segment_cost(
    cli: Checkin, language: str, phq9: int, gad7: int
) -> None:
    pid = patient(cli, "--language", language)
    updated = cli.json("patients", "update", str(pid), "--questionnaire-mode", "sms")
    assert (updated["questionnaire_mode"], updated["changed"]) == ("sms", True)
    weekly(cli, pid, "phq9")
    weekly(cli, pid, "gad7")
    assert sorted(costs(cli, pid)) == [("checkin_item", gad7), ("checkin_item", phq9)]
    # And back: nothing to re-plan, the next preview (and send) goes by link again.
    cli.json("patients", "update", str(pid), "--questionnaire-mode", "link")
    assert costs(cli, pid) == [("checkin_link", 1), ("checkin_link", 1)]


def test_an_unknown_mode_is_refused_and_nothing_changes(cli: Checkin) -> None:
    pid = patient(cli, "--questionnaire-mode", "sms")
    error = cli.fails("patients", "update", str(pid), "--questionnaire-mode", "carrier-pigeon")
    assert "questionnaire mode must be one of link, sms" in error
    assert cli.json("patients", "show", str(pid))["questionnaire_mode"] == "sms"
