"""Protocol files: the shipped ones load and expand; bad files fail with file, line and reason."""

from __future__ import annotations

import shutil
import textwrap
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from worker.domain.names import INSTRUMENTS, TWO_WEEK_INSTRUMENTS
from worker.domain.protocols import (
    SHIPPED_DIR,
    PlannedSchedule,
    Protocol,
    ProtocolError,
    ProtocolStep,
    expand,
    load_protocol_file,
    load_protocols,
)
from worker.domain.schedule import local_times

SHIPPED = ("ketamine-induction", "ketamine-maintenance", "therapy-weekly", "pain-weekly")
START = date(2026, 3, 2)  # a Monday


def fired(plan: PlannedSchedule, through: date) -> list[date]:
    return [local.date() for local in local_times(plan.rrule, plan.start, plan.until, through)]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


# --- the shipped protocols


def test_all_four_shipped_protocols_are_found() -> None:
    assert set(SHIPPED) <= set(load_protocols())


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_protocol_loads_and_expands(name: str) -> None:
    protocol = load_protocol_file(SHIPPED_DIR / f"{name}.yaml")

    assert protocol.name == name
    assert protocol.title
    assert protocol.description
    assert protocol.source.endswith(f"{name}.yaml")
    plans = expand(protocol, START)
    assert len(plans) == len(protocol.steps) >= 2
    for plan in plans:
        assert plan.instrument in INSTRUMENTS
        assert plan.start >= START
        assert fired(plan, START + timedelta(days=120)), f"{plan} never fires"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_protocols_send_inside_the_default_window(name: str) -> None:
    for plan in expand(load_protocols()[name], START):
        for local in local_times(plan.rrule, plan.start, plan.until, START + timedelta(days=60)):
            assert 8 <= local.hour < 21, plan


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("start", [START + timedelta(days=n) for n in range(7)])
def test_shipped_protocols_never_send_a_two_week_questionnaire_twice_in_a_week(
    name: str, start: date
) -> None:
    plans = expand(load_protocols()[name], start)
    for instrument in TWO_WEEK_INSTRUMENTS:
        days = sorted(
            day
            for plan in plans
            if plan.instrument == instrument
            for day in fired(plan, start + timedelta(days=400))
        )
        gaps = [(b - a).days for a, b in pairwise(days)]
        assert all(gap >= 7 for gap in gaps), (instrument, gaps)


def test_ketamine_induction_has_baselines_three_daily_weeks_and_eight_weekly_follow_ups() -> None:
    plans = expand(load_protocols()["ketamine-induction"], START)
    horizon = START + timedelta(days=200)
    by_instrument: dict[str, list[date]] = {}
    for plan in plans:
        by_instrument.setdefault(plan.instrument, []).extend(fired(plan, horizon))

    assert by_instrument["gad7"] == [START]
    assert by_instrument["phq9"] == [START + timedelta(days=7 * week) for week in range(9)]
    assert by_instrument["peg"] == [START + timedelta(days=7 * week) for week in range(9)]
    assert by_instrument["mood_pain"] == [START + timedelta(days=n) for n in range(21)]
    assert by_instrument["sleep"] == [START + timedelta(days=n) for n in range(21)]


def test_expand_turns_start_day_and_days_into_dates() -> None:
    protocol = Protocol(
        name="p",
        title="P",
        description="",
        steps=(
            ProtocolStep("mood", "FREQ=DAILY;BYHOUR=19;BYMINUTE=0", start_day=0, days=21),
            ProtocolStep("phq9", "FREQ=WEEKLY;BYHOUR=10;BYMINUTE=0", start_day=7, days=None),
        ),
        source="p.yaml",
    )
    assert expand(protocol, START) == [
        PlannedSchedule("mood", "FREQ=DAILY;BYHOUR=19;BYMINUTE=0", START, date(2026, 3, 22)),
        PlannedSchedule("phq9", "FREQ=WEEKLY;BYHOUR=10;BYMINUTE=0", date(2026, 3, 9), None),
    ]


def test_rules_are_stored_normalised() -> None:
    protocol = load_protocols()["pain-weekly"]
    assert all(step.rrule.startswith("FREQ=") for step in protocol.steps)
    assert all("BYMINUTE=" in step.rrule for step in protocol.steps)


# --- a clinic's own directory


VALID = """
    name: {name}
    title: {title}
    steps:
      - instrument: mood
        rrule: FREQ=DAILY;BYHOUR=19
"""


def test_a_clinic_file_with_a_shipped_name_replaces_the_shipped_protocol(tmp_path: Path) -> None:
    write(tmp_path, "therapy-weekly", VALID.format(name="therapy-weekly", title="Our therapy"))

    protocols = load_protocols(tmp_path)

    assert protocols["therapy-weekly"].title == "Our therapy"
    assert protocols["therapy-weekly"].source == str(tmp_path / "therapy-weekly.yaml")
    assert set(SHIPPED) <= set(protocols)


def test_a_copied_and_edited_shipped_file_loads_from_the_clinic_directory(tmp_path: Path) -> None:
    shutil.copy(SHIPPED_DIR / "ketamine-induction.yaml", tmp_path)
    protocols = load_protocols(tmp_path)
    assert protocols["ketamine-induction"].source == str(tmp_path / "ketamine-induction.yaml")
    assert protocols["ketamine-induction"].steps == load_protocols()["ketamine-induction"].steps


def test_a_clinic_file_with_a_new_name_is_added(tmp_path: Path) -> None:
    write(tmp_path, "sleep-study", VALID.format(name="sleep-study", title="Sleep study"))
    (tmp_path / "notes.txt").write_text("not a protocol", encoding="utf-8")
    protocols = load_protocols(tmp_path)
    assert protocols["sleep-study"].steps[0].instrument == "mood"
    assert set(protocols) == {*SHIPPED, "sleep-study"}


def test_a_bad_file_in_the_clinic_directory_stops_loading(tmp_path: Path) -> None:
    write(tmp_path, "broken", "name: broken\ntitle: Broken\nsteps: []\n")
    with pytest.raises(ProtocolError, match=r"broken\.yaml:3: steps must be a list"):
        load_protocols(tmp_path)


def test_a_missing_clinic_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="protocols directory not found"):
        load_protocols(tmp_path / "nope")


# --- malformed files: (file text, a marker on the line the error names, the reason)

HEAD = "name: bad\ntitle: Bad\n"

MALFORMED = {
    "unknown top-level key": (
        HEAD + "colour: red\nsteps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n",
        "colour",
        "unknown key 'colour' in the protocol",
    ),
    "missing steps": (HEAD, "name:", "the protocol is missing 'steps'"),
    "missing title": (
        "name: bad\nsteps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n",
        "name:",
        "missing 'title'",
    ),
    "steps not a list": (HEAD + "steps: daily mood\n", "steps:", "steps must be a list"),
    "a step missing its rule": (
        HEAD + "steps:\n  - instrument: mood\n    start_day: 0\n",
        "instrument",
        "a step is missing 'rrule'",
    ),
    "a step that is not a mapping": (
        HEAD + "steps:\n  - mood at nine\n",
        "mood at nine",
        "a step must be a mapping",
    ),
    "unknown step key": (
        HEAD + "steps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n    time: 9am\n",
        "time:",
        "unknown key 'time' in a step",
    ),
    "unknown instrument": (
        HEAD + "steps:\n  - instrument: phq10\n    rrule: FREQ=WEEKLY;BYHOUR=9\n",
        "phq10",
        "unknown instrument 'phq10'",
    ),
    "hourly rule": (
        HEAD + "steps:\n  - instrument: mood\n    rrule: FREQ=HOURLY;BYHOUR=9\n",
        "HOURLY",
        "rrule: FREQ=HOURLY is too frequent",
    ),
    "rule without BYHOUR": (
        HEAD + "steps:\n  - instrument: mood\n    rrule: FREQ=DAILY\n",
        "rrule",
        "rrule: the RRULE needs BYHOUR",
    ),
    "daily PHQ-9": (
        HEAD + "steps:\n  - instrument: phq9\n    rrule: FREQ=DAILY;BYHOUR=9\n",
        "rrule",
        "phq9 asks about the last two weeks",
    ),
    "weekly PHQ-9 on top of a day-0 baseline": (
        HEAD
        + "steps:\n"
        + "  - instrument: phq9\n    rrule: FREQ=DAILY;COUNT=1;BYHOUR=10\n"
        + "  - instrument: peg\n    rrule: FREQ=WEEKLY;BYHOUR=10\n"
        + "  - instrument: phq9  # weekly\n    rrule: FREQ=WEEKLY;BYHOUR=10\n",
        "# weekly",
        "this phq9 step and the one at line 4 can send it 0 day(s) apart",
    ),
    "weekly GAD-7 three days after a baseline": (
        HEAD
        + "steps:\n"
        + "  - instrument: gad7\n    rrule: FREQ=DAILY;COUNT=1;BYHOUR=10\n"
        + "  - instrument: gad7  # weekly\n    rrule: FREQ=WEEKLY;BYHOUR=10\n    start_day: 3\n",
        "# weekly",
        "3 day(s) apart",
    ),
    "negative start_day": (
        HEAD + "steps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n    start_day: -2\n",
        "start_day",
        "start_day must be 0 or more",
    ),
    "negative days": (
        HEAD + "steps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n    days: -7\n",
        "days:",
        "days must be 1 or more",
    ),
    "zero days": (
        HEAD + "steps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n    days: 0\n",
        "days:",
        "days must be 1 or more",
    ),
    "days as text": (
        HEAD
        + "steps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n    days: three weeks\n",
        "days:",
        "days must be a whole number, not text",
    ),
    "start_day as a decimal": (
        HEAD + "steps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n    start_day: 1.5\n",
        "start_day",
        "start_day must be a whole number, not a decimal number",
    ),
    "start_day as a boolean": (
        HEAD + "steps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n    start_day: yes\n",
        "start_day",
        "not true/false",
    ),
    "instrument as a list": (
        HEAD + "steps:\n  - instrument: [mood, pain]\n    rrule: FREQ=DAILY;BYHOUR=9\n",
        "instrument",
        "instrument must be text, not a list",
    ),
    "title as a number": (
        "name: bad\ntitle: 2026\nsteps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n",
        "title",
        "title must be text, not a whole number",
    ),
    "duplicate key": (
        HEAD
        + "steps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n"
        + "    rrule: FREQ=DAILY;BYHOUR=19\n",
        "BYHOUR=19",
        "duplicate key 'rrule'",
    ),
    "duplicate top-level key": (
        HEAD + "title: Again\nsteps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n",
        "Again",
        "duplicate key 'title'",
    ),
    "name that is not the file name": (
        "name: other\ntitle: Bad\nsteps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n",
        "name:",
        "name 'other' must match the file name",
    ),
    "name with capitals": (
        "name: Bad\ntitle: Bad\nsteps:\n  - instrument: mood\n    rrule: FREQ=DAILY;BYHOUR=9\n",
        "name:",
        "lower-case letters, digits and dashes",
    ),
    "YAML syntax error in the middle": (
        "name: bad\ntitle: Bad: really\nsteps:\n  - instrument: mood\n",
        "title",
        "invalid YAML: mapping values are not allowed here",
    ),
    "YAML syntax error": (
        HEAD + "steps:\n  - instrument: mood\n    rrule: [FREQ=DAILY\n",
        "rrule",
        "invalid YAML: expected ',' or ']'",
    ),
    "top level is a list": ("- name: bad\n", "- name", "the protocol must be a mapping"),
    "empty file": ("", None, "the file is empty"),
    "two documents": (HEAD + "---\n" + HEAD, "---", "invalid YAML"),
}


@pytest.mark.parametrize(("text", "marker", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_file_fails_with_its_path_line_and_reason(
    tmp_path: Path, text: str, marker: str | None, reason: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    line = 1 if marker is None else next(i for i, s in enumerate(lines, 1) if marker in s)

    with pytest.raises(ProtocolError) as caught:
        load_protocol_file(path)

    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message
    assert "\n" not in message
    assert (caught.value.path, caught.value.line) == (str(path), line)


def test_an_unreadable_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ProtocolError, match=r"bad\.yaml: not UTF-8"):
        load_protocol_file(path)


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match=r"gone\.yaml: cannot read"):
        load_protocol_file(tmp_path / "gone.yaml")


def test_a_protocol_error_is_a_value_error_with_its_parts() -> None:
    error = ProtocolError("days must be 1 or more", "x.yaml", 7)
    assert isinstance(error, ValueError)
    assert str(error) == "x.yaml:7: days must be 1 or more"
    assert error.reason == "days must be 1 or more"
    assert str(ProtocolError("no location")) == "no location"


def test_optional_fields_default_sensibly(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "minimal",
        """
        name: minimal
        title: Minimal
        steps:
          - instrument: pain
            rrule: RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=18
            days: null
        """,
    )
    protocol = load_protocol_file(path)
    assert protocol.description == ""
    assert protocol.steps == (
        ProtocolStep("pain", "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=18;BYMINUTE=0", 0, None),
    )
