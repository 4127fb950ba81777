"""A reminder email's one-click confirm and request-a-new-time links, from a real email through
a real SMTP server and the running web app (services/inbound/appointment_links.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from checkin_emulator import TwilioEmulator
from sqlalchemy import func, select

from tests.integration.clinic import Clinic, open_clinic
from tests.integration.test_email_answers import html_part, text_part
from worker.domain.forms import token_hash
from worker.rendering import format_when
from worker.services.read.followup_queue import followup_queue
from worker.services.records.appointments import add_appointment, cancel, reschedule
from worker.services.records.patients import add_patient
from worker.store.db import session_scope
from worker.store.models import Appointment, AppointmentLink, AuditEvent, FollowUp
from worker.tick import tick

ADDRESS = "rosa@example.org"
BOOKED = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
# Tue Mar 10 2026, 3:00 PM in New York (EDT from Mar 8); its 24-hour reminder a day before.
STARTS = datetime(2026, 3, 10, 19, 0, tzinfo=UTC)
REMINDED = STARTS - timedelta(days=1)
LATER = REMINDED + timedelta(hours=2)
LINK = re.compile(r"^/a/([A-Za-z0-9_-]{22})/(confirm|reschedule)$")


@pytest.fixture
def clinic(db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object) -> Iterator[Clinic]:
    c = open_clinic(db_url, twilio_emulator, smtp_server)
    # The web app reads this clock: the links are followed a couple of hours after the email.
    c.rt.clock = lambda: LATER
    yield c
    c.close()


def reminded(clinic: Clinic, language: str = "en") -> tuple[int, int, dict[str, str]]:
    """An email patient, an appointment, its reminder sent; the links in the reminder's text."""
    with session_scope(clinic.rt.sessions) as s:
        pid = add_patient(
            s, now=BOOKED, name="Rosa Vega", tz="America/New_York", channel="email",
            email=ADDRESS, consent=["email"], send_window="00:00-24:00", language=language,
        ).id  # fmt: skip
        aid = add_appointment(s, pid, now=BOOKED, kind="therapy", at="", starts_at=STARTS).id
    tick(clinic.rt, REMINDED)
    [raw] = clinic.mail_to(ADDRESS)
    text, html = text_part(raw), html_part(raw)
    urls = re.findall(rf"{re.escape(clinic.base_url)}/a/\S+", text)
    links = {}
    for url in urls:
        path = url.removeprefix(clinic.base_url)
        found = LINK.match(path)
        assert found is not None, path  # an opaque token and the action: no id in the URL
        links[found.group(2)] = url
        assert url in html
    assert set(links) == {"confirm", "reschedule"}
    assert "contact us" not in text and "comuníquese" not in text  # no longer "please phone"
    return pid, aid, links


def state(clinic: Clinic, aid: int) -> tuple[datetime | None, int, int, list[datetime | None]]:
    """(confirmed_at, confirm audit events, reschedule requests, the links' used_at)."""
    with session_scope(clinic.rt.sessions) as s:
        appt = s.get(Appointment, aid)
        assert appt is not None
        audits = s.scalar(
            select(func.count()).where(
                AuditEvent.entity_id == aid, AuditEvent.action == "appointment.confirm"
            )
        )
        requests = s.scalar(select(func.count()).where(FollowUp.reason == "reschedule_request"))
        used = list(s.scalars(select(AppointmentLink.used_at)))
        return appt.confirmed_at, int(audits or 0), int(requests or 0), used


def test_confirm_link_confirms_once_after_a_get_that_changes_nothing(clinic: Clinic) -> None:
    pid, aid, links = reminded(clinic)
    token = LINK.match(links["confirm"].removeprefix(clinic.base_url)).group(1)  # type: ignore[union-attr]
    assert links["reschedule"].endswith(f"/a/{token}/reschedule")  # one token per email
    with session_scope(clinic.rt.sessions) as s:
        [row] = s.scalars(select(AppointmentLink)).all()
        # Only the hash is stored; the link names the appointment as it was when sent.
        assert row.token_hash == token_hash(token) != token
        assert (row.appointment_id, row.appointment_version, row.patient_id) == (aid, 1, pid)
        assert row.expires_at == STARTS

    page = httpx.get(links["confirm"])
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert format_when(datetime(2026, 3, 10, 15, 0), "en") in page.text  # the patient's zone
    assert "<script" not in page.text and "style=" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert state(clinic, aid) == (None, 0, 0, [None])  # a mail scanner's GET records nothing

    done = httpx.post(links["confirm"])
    assert done.status_code == 200 and "Confirmed:" in done.text
    assert "already" not in done.text
    # As a patient's "yes I'll be there" text would: confirmed, audited as the patient's act.
    [appt] = clinic.cli.json("appointments", "list", str(pid))
    assert appt["id"] == aid and appt["confirmed_at"] is not None
    with session_scope(clinic.rt.sessions) as s:
        [event] = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "appointment.confirm")
        ).all()
        assert (event.actor, event.patient_id, event.detail["via"]) == (
            "patient",
            pid,
            "email link",
        )
    confirmed = state(clinic, aid)
    assert confirmed[:3] == (LATER, 1, 0)

    again = httpx.post(links["confirm"])
    assert again.status_code == 200 and "already received" in again.text
    other = httpx.post(links["reschedule"])  # the same email's other button: one answer per email
    assert other.status_code == 200 and "already received" in other.text
    assert state(clinic, aid) == confirmed


def test_request_a_new_time_opens_the_front_desk_follow_up(clinic: Clinic) -> None:
    pid, aid, links = reminded(clinic)
    assert httpx.get(links["reschedule"]).status_code == 200
    assert state(clinic, aid)[2] == 0
    done = httpx.post(links["reschedule"])
    assert done.status_code == 200 and "call you to find a new time" in done.text
    assert httpx.post(links["reschedule"]).text.count("already received") == 1
    with session_scope(clinic.rt.sessions) as s:
        desk = followup_queue(s, role="frontdesk")
        assert [(f.reason, f.severity, f.patient_id) for f in desk] == [
            ("reschedule_request", "routine", pid)
        ]
    [item] = clinic.cli.json("followups", "list", "--patient", str(pid))
    [evidence] = item["detail"]["evidence"]
    assert (evidence["appointment_id"], evidence["via"]) == (aid, "email link")
    assert state(clinic, aid)[:3] == (None, 0, 1)


@pytest.mark.parametrize("change", ["rescheduled", "cancelled", "started"])
def test_a_link_after_the_appointment_changed_or_started_records_nothing(
    clinic: Clinic, change: str
) -> None:
    _, aid, links = reminded(clinic)
    if change == "started":
        clinic.rt.clock = lambda: STARTS
    with session_scope(clinic.rt.sessions) as s:
        if change == "rescheduled":
            reschedule(s, aid, now=LATER, starts_at=STARTS + timedelta(days=7))
        elif change == "cancelled":
            cancel(s, aid, now=LATER)
    before = state(clinic, aid)
    for action in ("confirm", "reschedule"):
        for method in (httpx.get, httpx.post):
            page = method(links[action])
            assert page.status_code == 410
            assert "no longer active" in page.text and "+12125550199" in page.text
    assert state(clinic, aid) == before
    assert before[1:] == (0, 0, [None])


def test_a_forged_or_malformed_link_is_not_found(clinic: Clinic) -> None:
    _, aid, links = reminded(clinic)
    token = links["confirm"].rsplit("/", 2)[1]
    forged = "A" * 22 if token != "A" * 22 else "B" * 22
    for url in (
        f"{clinic.base_url}/a/{forged}/confirm",
        f"{clinic.base_url}/a/{token[:-1]}/confirm",
        f"{clinic.base_url}/a/{token}/cancel",
    ):
        assert httpx.get(url).status_code == 404
        assert httpx.post(url).status_code == 404
    assert state(clinic, aid)[:3] == (None, 0, 0)


def test_the_page_speaks_spanish_to_a_spanish_speaking_patient(clinic: Clinic) -> None:
    _, aid, links = reminded(clinic, "es")
    page = httpx.get(links["confirm"])
    assert page.status_code == 200 and '<html lang="es">' in page.text
    assert format_when(datetime(2026, 3, 10, 15, 0), "es") in page.text
    assert "Confirmar que asistiré" in page.text
    done = httpx.post(links["confirm"])
    assert "Confirmada:" in done.text
    assert state(clinic, aid)[:2] == (LATER, 1)
