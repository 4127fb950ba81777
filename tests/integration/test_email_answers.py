"""Check-in emails carry one opaque link to the questionnaire form: the URL says nothing (no
message, item or value), opening it records nothing, and the answer chosen on the page is the
one recorded, once."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from zoneinfo import ZoneInfo

import httpx
import pytest
from checkin_emulator import TwilioEmulator

from tests.integration.clinic import Clinic, open_clinic

ADDRESS = "sam@example.org"


@pytest.fixture
def clinic(
    sqlite_url: str, twilio_emulator: TwilioEmulator, smtp_server: object
) -> Iterator[Clinic]:
    c = open_clinic(sqlite_url, twilio_emulator, smtp_server)
    yield c
    c.close()


def text_part(raw: bytes) -> str:
    msg = email.message_from_bytes(raw)
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text part")


def html_part(raw: bytes) -> str:
    msg: Message = email.message_from_bytes(raw)
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no html part")


def email_checkin(clinic: Clinic, instrument: str) -> tuple[int, str]:
    pid = int(
        clinic.cli.json(
            "patients",
            "add",
            "--name",
            "Sam Okafor",
            "--email",
            ADDRESS,
            "--tz",
            "America/Chicago",
            "--channel",
            "email",
            "--consent",
            "email",
            "--send-window",
            "00:00-24:00",
        )["id"]
    )
    at = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    local = at.astimezone(ZoneInfo("America/Chicago"))
    clinic.cli.json(
        "schedules",
        "add",
        str(pid),
        "--instrument",
        instrument,
        "--rrule",
        f"FREQ=WEEKLY;BYHOUR={local.hour};BYMINUTE={local.minute}",
        "--start",
        local.date().isoformat(),
        "--until",
        local.date().isoformat(),
    )
    assert clinic.cli.json("tick", "--now", at.isoformat())["sent"] == 1
    [raw] = clinic.mail_to(ADDRESS)
    links = re.findall(r"https?://\S+", text_part(raw))
    # One questionnaire link, and the one-click unsubscribe link every patient email carries
    # (tests/integration/test_email_unsubscribe.py): nothing else, no answer in any URL.
    forms = [u for u in links if "/q/" in u]
    assert len(forms) == 1 and len(links) == 2, links
    assert any("/u/" in u for u in links), links
    [link] = forms
    assert re.fullmatch(re.escape(clinic.base_url) + r"/q/[A-Za-z0-9_-]{22}", link), link
    assert f'href="{link}"' in html_part(raw)
    return pid, link


def test_opening_the_link_records_nothing_and_the_chosen_value_is_recorded_once(
    clinic: Clinic,
) -> None:
    pid, link = email_checkin(clinic, "mood")
    for _ in range(2):  # a mail scanner, then the patient
        page = httpx.get(link)
        assert page.status_code == 200 and 'type="radio"' in page.text
    assert clinic.cli.json("responses", "list", "--patient", str(pid)) == []
    recorded = httpx.post(link, data={"mood": "6"})
    assert recorded.status_code == 200 and "We received your answers" in recorded.text
    again = httpx.post(link, data={"mood": "2"})
    assert "We already received this check-in" in again.text
    # The page for a second use shows no answer at all: neither the one sent nor the one kept.
    assert 'type="radio"' not in again.text and "Several" not in again.text
    rows = clinic.cli.json("responses", "list", "--patient", str(pid))
    assert [(r["item"], r["value"]) for r in rows] == [("mood", 6)]


def test_an_altered_link_records_nothing(clinic: Clinic) -> None:
    pid, link = email_checkin(clinic, "mood")
    token = link.rsplit("/q/", 1)[1]
    forged = f"{clinic.base_url}/q/{token[:-2]}{'AB' if token[-2:] != 'AB' else 'CD'}"
    assert httpx.get(forged).status_code == 404
    assert httpx.post(forged, data={"mood": "3"}).status_code == 404
    assert clinic.cli.json("responses", "list", "--patient", str(pid)) == []


def test_a_positive_item9_by_email_shows_crisis_numbers_and_pages(clinic: Clinic) -> None:
    from tests.integration.clinic import ONCALL_PHONE

    pid, link = email_checkin(clinic, "phq9")
    answers = {f"phq9_{n}": "0" for n in range(1, 9)} | {"phq9_9": "1"}
    page = httpx.post(link, data=answers)
    assert "988" in page.text and "911" in page.text and 'role="alert"' in page.text
    assert len(clinic.sms_to(ONCALL_PHONE)) == 1
    [f] = clinic.cli.json("followups", "list", "--patient", str(pid))
    assert (f["reason"], f["severity"]) == ("phq9_item9", "urgent")
