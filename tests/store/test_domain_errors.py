"""Service errors speak the clinic's words and name the input at fault by a domain key; the
command line adds its flag (the API its field: tests/api/test_api.py)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tests.cli import Checkin
from worker.services.clinical import followups
from worker.services.clinical.export import export_patient
from worker.services.errors import InvalidInput
from worker.services.records import accounts, schedules
from worker.services.records.patients import add_patient
from worker.services.runtime import Runtime
from worker.store.db import session_scope

WORKER = Path(__file__).resolve().parents[2] / "worker"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
# A flag inside a string literal: `"--by ...`, `f"--at ...`, `... (--start)`.
FLAG = re.compile(r"""["'(\s]--[a-z]""")


def test_no_service_or_domain_message_names_a_command_line_flag() -> None:
    found = []
    for folder in ("services", "domain"):
        for path in sorted((WORKER / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if FLAG.search(code):
                    found.append(f"{path.relative_to(WORKER)}:{number}: {line.strip()}")
    assert found == [], "\n".join(found)


def test_the_services_name_the_input_at_fault_in_domain_words(rt: Runtime) -> None:
    cases = [
        (
            lambda s: followups.acknowledge(s, 1, by="  ", now=NOW),
            "by",
            "who acknowledges it is missing",
        ),
        (
            lambda s: followups.resolve(s, 1, by=" ", note=None, now=NOW),
            "by",
            "who resolved it is missing",
        ),
        (
            lambda s: followups.list_followups(s, status="closed"),
            "status",
            "the status must be open, acknowledged or resolved",
        ),
        (
            lambda s: add_patient(
                s, now=NOW, name="Ana", tz="America/New_York", channel="sms", phone=None
            ),
            "phone",
            "a phone number is required for the sms channel",
        ),
        (
            lambda s: add_patient(
                s, now=NOW, name="Ana", tz="America/New_York", channel="email", email=None
            ),
            "email",
            "an email address is required for the email channel",
        ),
        (
            lambda s: export_patient(s, 1, "xml", now=NOW, base_url="http://x"),
            "format",
            "the export format must be fhir or csv, got 'xml'",
        ),
        (
            lambda s: accounts.issue_api_token(s, 1, name=" ", now=NOW),
            "name",
            "the token's name is missing: give it a label",
        ),
    ]
    for call, field, message in cases:
        with pytest.raises(InvalidInput) as caught, session_scope(rt.sessions) as session:
            call(session)
        assert (caught.value.field, str(caught.value)) == (field, message)


def test_an_end_date_before_the_start_names_the_end_date(rt: Runtime) -> None:
    with session_scope(rt.sessions) as session:
        pid = add_patient(
            session, now=NOW, name="Ana", tz="America/New_York", channel="sms",
            phone="+12125550160",
        ).id  # fmt: skip
    with pytest.raises(InvalidInput) as caught, session_scope(rt.sessions) as session:
        schedules.add_schedule(
            session, pid, now=NOW, instrument="mood", rrule="FREQ=DAILY;BYHOUR=9",
            start=date(2026, 3, 5), until=date(2026, 3, 4),
        )  # fmt: skip
    assert caught.value.field == "until"
    assert str(caught.value) == "the end date 2026-03-04 is before the start date 2026-03-05"


@pytest.fixture
def checkin(db_url: str) -> Checkin:
    return Checkin({"CHECKIN_DATABASE_URL": db_url})


def test_the_command_line_adds_its_flag_to_the_domain_message(checkin: Checkin) -> None:
    assert checkin.fails("followups", "ack", "1", "--by", " ") == (
        "error: who acknowledges it is missing (--by)\n"
    )
    assert checkin.fails("followups", "resolve", "1", "--by", " ") == (
        "error: who resolved it is missing (--by)\n"
    )
    assert checkin.fails("followups", "list", "--status", "closed") == (
        "error: the status must be open, acknowledged or resolved (--status)\n"
    )
    pid = checkin.json(
        "patients", "add", "--name", "Ana", "--phone", "+12125550161", "--tz",
        "America/New_York", "--channel", "sms",
    )["id"]  # fmt: skip
    err = checkin.fails(
        "schedules", "add", str(pid), "--instrument", "mood", "--rrule", "FREQ=DAILY;BYHOUR=9",
        "--start", "2030-03-05", "--until", "2030-03-04",
    )  # fmt: skip
    assert err == "error: the end date 2030-03-04 is before the start date 2030-03-05 (--until)\n"
    err = checkin.fails(
        "appointments", "add", str(pid), "--kind", "therapy", "--at", "tomorrow at ten"
    )
    assert err == (
        "error: the appointment time must be YYYY-MM-DDTHH:MM (patient-local), "
        "got 'tomorrow at ten' (--at)\n"
    )
