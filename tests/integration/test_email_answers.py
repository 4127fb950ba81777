"""One-click answers from a check-in email: a link shows a page; only the button records."""

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


def email_checkin(clinic: Clinic, instrument: str) -> tuple[int, list[str]]:
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
    links = re.findall(r"https?://\S+/r/[A-Za-z0-9_\-.]+", text_part(raw))
    assert links, "the email carries one-click links"
    assert "<a " in html_part(raw)
    return pid, links


def test_opening_a_link_records_nothing_and_the_button_records_once(clinic: Clinic) -> None:
    pid, links = email_checkin(clinic, "mood")
    assert len(links) == 11  # one per value 0..10
    six = next(
        link for link in links if clinic.rt.settings and "/r/" in link and _value(clinic, link) == 6
    )
    page = httpx.get(six)
    assert page.status_code == 200 and "<form" in page.text and "Nothing is recorded" in page.text
    assert clinic.cli.json("responses", "list", "--patient", str(pid)) == []
    recorded = httpx.post(six)
    assert recorded.status_code == 200 and "recorded" in recorded.text
    again = httpx.post(six)
    assert "already have your answer" in again.text
    rows = clinic.cli.json("responses", "list", "--patient", str(pid))
    assert [(r["item"], r["value"]) for r in rows] == [("mood", 6)]


def test_an_altered_or_expired_link_records_nothing(clinic: Clinic) -> None:
    pid, links = email_checkin(clinic, "mood")
    token = links[3].rsplit("/r/", 1)[1]
    payload, mac = token.split(".")
    forged = f"{clinic.base_url}/r/{payload[:-2]}AA.{mac}"
    assert httpx.post(forged).status_code == 410
    from worker.services.inbound.answer_links import make_token

    old = make_token(clinic.rt.link_key, 1, "mood", 3, datetime.now(UTC) - timedelta(minutes=1))
    assert httpx.post(f"{clinic.base_url}/r/{old}").status_code == 410
    assert clinic.cli.json("responses", "list", "--patient", str(pid)) == []


def test_a_positive_item9_by_email_shows_crisis_numbers_and_pages(clinic: Clinic) -> None:
    from tests.integration.clinic import ONCALL_PHONE

    pid, links = email_checkin(clinic, "phq9")
    item9_one = next(link for link in links if _item_value(clinic, link) == ("phq9_9", 1))
    page = httpx.post(item9_one)
    assert "988" in page.text and "911" in page.text
    assert len(clinic.sms_to(ONCALL_PHONE)) == 1
    [f] = clinic.cli.json("followups", "list", "--patient", str(pid))
    assert (f["reason"], f["severity"]) == ("phq9_item9", "urgent")


def _item_value(clinic: Clinic, link: str) -> tuple[str, int]:
    from worker.services.inbound.answer_links import read_token

    parsed = read_token(clinic.rt.link_key, link.rsplit("/r/", 1)[1], datetime.now(UTC))
    assert parsed is not None
    return parsed[1], parsed[2]


def _value(clinic: Clinic, link: str) -> int:
    return _item_value(clinic, link)[1]
