"""The questionnaire page over HTTP, on the real app: its headers, the date-of-birth step that
shows nothing of the questionnaire (in Spanish here), and the kind page of an expired link."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from checkin_emulator import TwilioEmulator
from sqlalchemy import update

from tests.integration.clinic import Clinic, open_clinic
from tests.integration.test_replies import send_checkin
from worker.store.db import session_scope
from worker.store.models import FormLink, Patient

PATIENT = "+12125550166"
STEM_ES = "Durante las últimas 2 semanas"


def link_for(clinic: Clinic, *patient_args: str, birth: date | None = None) -> tuple[int, str]:
    pid = clinic.patient(PATIENT, "--send-window", "00:00-24:00", *patient_args)
    if birth is not None:
        with session_scope(clinic.rt.sessions) as session:
            session.execute(update(Patient).where(Patient.id == pid).values(birth_date=birth))
    send_checkin(clinic, pid, "phq9")
    [sms] = clinic.sms_to(PATIENT)
    match = re.search(r"https?://\S+/q/[A-Za-z0-9_-]{22}", sms)
    assert match, sms
    return pid, match.group(0)


@pytest.fixture
def dob_clinic(
    sqlite_url: str, twilio_emulator: TwilioEmulator, smtp_server: object
) -> Iterator[Clinic]:
    c = open_clinic(sqlite_url, twilio_emulator, smtp_server, CHECKIN_FORM_VERIFY_DOB="1")
    yield c
    c.close()


def test_the_date_of_birth_step_reveals_nothing_until_it_matches(dob_clinic: Clinic) -> None:
    clinic = dob_clinic
    pid, link = link_for(clinic, "--language", "es", birth=date(1979, 11, 2))
    page = httpx.get(link)
    assert page.status_code == 200 and '<html lang="es">' in page.text
    assert 'for="dob_m"' in page.text and "Fecha de nacimiento" in page.text
    for secret in (STEM_ES, 'type="radio"', "PHQ", "phq9", "Poco interés"):
        assert secret not in page.text, secret
    wrong = httpx.post(link, data={"step": "verify", "dob_m": "2", "dob_d": "11", "dob_y": "1979"})
    assert "Intentos restantes: 4" in wrong.text and STEM_ES not in wrong.text
    right = {"dob_m": "11", "dob_d": "2", "dob_y": "1979"}
    shown = httpx.post(link, data={"step": "verify", **right})
    assert STEM_ES in shown.text and shown.text.count('type="radio"') == 36
    assert 'type="hidden" name="dob_y" value="1979"' in shown.text
    assert clinic.cli.json("responses", "list", "--patient", str(pid)) == []
    sent = httpx.post(link, data={**right, "phq9_1": "2", "phq9_9": "0"})
    assert "Recibimos sus respuestas" in sent.text
    rows = clinic.cli.json("responses", "list", "--patient", str(pid))
    assert {(r["item"], r["value"], r["partial"]) for r in rows} == {
        ("phq9_1", 2, True),
        ("phq9_9", 0, True),
    }


def test_the_page_is_private_and_an_expired_link_is_a_kind_page(sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    pid, link = link_for(clinic)
    page = httpx.get(link)
    assert page.status_code == 200 and '<html lang="en">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in page.headers and "<script" not in page.text
    with session_scope(clinic.rt.sessions) as session:
        session.execute(
            update(FormLink).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    expired = httpx.get(link)
    assert expired.status_code == 410 and "This link has expired" in expired.text
    assert "+12125550199" in expired.text and 'type="radio"' not in expired.text
    posted = httpx.post(link, data={"phq9_1": "3"})
    assert posted.status_code == 410
    assert clinic.cli.json("responses", "list", "--patient", str(pid)) == []
