"""The dashboard's No-show / Attended buttons and consent buttons; the API's consent grant:
each records what the CLI does (opt-in confirmation, front-desk follow-up)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from checkin_emulator import TwilioEmulator
from sqlalchemy import select

from tests.integration.clinic import Clinic, open_clinic
from tests.web.conftest import Browser, add_account
from worker.services.records.appointments import add_appointment
from worker.services.records.patients import add_patient
from worker.store.db import session_scope
from worker.store.models import Appointment, FollowUp, Message

PHONE = "+12125550155"


@pytest.fixture
def optin_clinic(
    db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object
) -> Iterator[Clinic]:
    c = open_clinic(db_url, twilio_emulator, smtp_server, CHECKIN_OPTIN_CONFIRMATION="1")
    yield c
    c.close()


def confirmations(clinic: Clinic) -> list[int | None]:
    with session_scope(clinic.rt.sessions) as s:
        return list(
            s.scalars(select(Message.patient_id).where(Message.template == "optin_confirmation"))
        )


def test_consent_recorded_by_api_or_dashboard_is_confirmed_once(optin_clinic: Clinic) -> None:
    api = httpx.Client(
        base_url=f"{optin_clinic.base_url}/api",
        headers={"Authorization": "Bearer test-token-123"},
    )
    added = api.post(
        "/patients",
        json={"name": "A", "phone": PHONE, "tz": "UTC", "channel": "sms", "consent": ["sms"]},
    ).json()
    later = api.post(
        "/patients", json={"name": "B", "phone": "+12125550156", "tz": "UTC", "channel": "sms"}
    ).json()
    web = Browser(optin_clinic.base_url)
    try:
        web.sign_in(add_account(optin_clinic, "clinician"))
        page = f"/patients/{later['id']}"
        for _ in range(2):  # the second grant finds consent in force: nothing more
            r = web.post(f"{page}/consent", {"channel": "sms", "action": "grant"}, token_from=page)
            assert r.status_code == 303
    finally:
        web.close()
    assert sorted(p for p in confirmations(optin_clinic) if p) == [added["id"], later["id"]]


def test_the_no_show_and_attended_buttons(optin_clinic: Clinic) -> None:
    now = datetime.now(UTC)
    with session_scope(optin_clinic.rt.sessions) as s:
        p = add_patient(s, now=now, name="C", tz="UTC", channel="sms", phone=PHONE,
                        confirm_optin=False)  # fmt: skip
        missed, came = (
            add_appointment(s, p.id, now=now, kind="infusion", at="", starts_at=now - d,
                            allow_past=True).id
            for d in (timedelta(hours=3), timedelta(hours=2))
        )  # fmt: skip
        pid = p.id
    web = Browser(optin_clinic.base_url)
    try:
        web.sign_in(add_account(optin_clinic, "frontdesk"))
        page = f"/patients/{pid}"
        html = web.get(page).text
        assert f'action="/appointments/{missed}/no-show"' in html
        assert f'action="/appointments/{came}/attended"' in html
        assert web.post(f"/appointments/{missed}/no-show", {}, token_from=page).status_code == 303
        assert web.post(f"/appointments/{came}/attended", {}, token_from=page).status_code == 303
        assert web.post("/appointments/9999/no-show", {}, token_from=page).status_code == 404
        # The front desk sees the no-show follow-up in its queue.
        assert "Missed appointment" in web.get("/queue").text
    finally:
        web.close()
    with session_scope(optin_clinic.rt.sessions) as s:
        statuses = {a.id: a.status for a in s.scalars(select(Appointment))}
        assert statuses == {missed: "no_show", came: "attended"}
        assert [f.reason for f in s.scalars(select(FollowUp))] == ["no_show"]
