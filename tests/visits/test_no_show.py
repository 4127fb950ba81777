"""`checkin appointments no-show|attended`, the API, and the "we missed you" text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from checkin_emulator import TwilioEmulator

from tests.cli import Checkin
from tests.conftest import make_settings
from tests.integration.clinic import Clinic, open_clinic
from tests.integration.conftest import (  # noqa: F401 (fixtures)
    smtp_server,
    smtp_server_factory,
    twilio_emulator,
)
from worker.services.records.appointments import add_appointment
from worker.services.records.patients import add_patient
from worker.services.runtime import build_runtime
from worker.store.db import session_scope
from worker.tick import tick

VISIT = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)
AFTER = (VISIT + timedelta(hours=2)).isoformat()
PHONE = "+12125550166"


def visits(db_url: str, *starts: datetime) -> list[int]:
    rt = build_runtime(make_settings(db_url))
    try:
        with session_scope(rt.sessions) as s:
            p = add_patient(
                s, now=VISIT - timedelta(days=9), name="Kim", tz="America/New_York",
                channel="sms", phone=PHONE, consent=["sms"], send_window="00:00-24:00", confirm_optin=False,
            )  # fmt: skip
            return [
                add_appointment(
                    s, p.id, now=VISIT - timedelta(days=7), kind="infusion", at="", starts_at=at
                ).id
                for at in starts
            ]
    finally:
        rt.close()


def test_no_show_is_recorded_once_with_a_front_desk_follow_up(db_url: str) -> None:
    cli = Checkin({"CHECKIN_DATABASE_URL": db_url})
    [appt] = visits(db_url, VISIT)
    first = cli.json("appointments", "no-show", str(appt), "--now", AFTER)
    assert (first["status"], first["changed"], first["text_queued"]) == ("no_show", True, False)
    again = cli.json("appointments", "no-show", str(appt), "--now", AFTER)
    assert (again["status"], again["changed"]) == ("no_show", False)
    items = cli.json("followups", "list", "--status", "open")
    assert [(f["reason"], f["severity"]) for f in items] == [("no_show", "routine")]
    assert "no-show" in cli.fails("appointments", "attended", str(appt), "--now", AFTER)


def test_attended_is_idempotent_and_bad_ids_change_nothing(db_url: str) -> None:
    cli = Checkin({"CHECKIN_DATABASE_URL": db_url})
    came, ahead = visits(db_url, VISIT, VISIT + timedelta(days=30))
    assert cli.json("appointments", "attended", str(came), "--now", AFTER)["changed"] is True
    assert cli.json("appointments", "attended", str(came), "--now", AFTER)["changed"] is False
    assert "attended" in cli.fails("appointments", "no-show", str(came), "--now", AFTER)
    assert "no appointment with id 999" in cli.fails("appointments", "no-show", "999")
    assert "no appointment with id 999" in cli.fails("appointments", "attended", "999")
    assert "not started" in cli.fails("appointments", "no-show", str(ahead), "--now", AFTER)
    cli.json("appointments", "cancel", str(ahead))
    assert "cancelled" in cli.fails("appointments", "no-show", str(ahead), "--now", AFTER)
    statuses = {a["id"]: a["status"] for a in cli.json("appointments", "list")}
    assert statuses == {came: "attended", ahead: "cancelled"}
    assert cli.json("followups", "list") == []


def test_the_fhir_export_says_fulfilled_for_a_visit_attended_and_noshow_for_one_missed(
    db_url: str,
) -> None:
    """FHIR's Appointment.status for the visit statuses: attended was exported as "booked"."""
    cli = Checkin({"CHECKIN_DATABASE_URL": db_url})
    came, missed, called_off = visits(db_url, VISIT, VISIT + timedelta(minutes=30), VISIT)
    cli.json("appointments", "attended", str(came), "--now", AFTER)
    cli.json("appointments", "no-show", str(missed), "--now", AFTER)
    cli.json("appointments", "cancel", str(called_off))
    [patient] = {a["patient_id"] for a in cli.json("appointments", "list")}
    bundle = cli.json("export", "--patient", str(patient), "--now", AFTER)
    statuses = {
        int(e["resource"]["identifier"][0]["value"]): e["resource"]["status"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Appointment"
    }
    assert statuses == {came: "fulfilled", missed: "noshow", called_off: "cancelled"}


@pytest.fixture
def clinic(
    db_url: str,
    twilio_emulator: TwilioEmulator,  # noqa: F811
    smtp_server: object,  # noqa: F811
) -> Iterator[Clinic]:
    c = open_clinic(db_url, twilio_emulator, smtp_server, CHECKIN_NOSHOW_TEXT="1")
    yield c
    c.close()


def test_the_we_missed_you_text_and_an_r_reply_reach_the_front_desk(clinic: Clinic) -> None:
    import httpx

    now = datetime.now(UTC)
    [appt] = visits(clinic.env["CHECKIN_DATABASE_URL"], now - timedelta(hours=2))
    api = httpx.Client(
        base_url=f"{clinic.base_url}/api", headers={"Authorization": "Bearer test-token-123"}
    )
    marked = api.post(f"/appointments/{appt}/no-show").json()
    assert (marked["status"], marked["changed"], marked["text_queued"]) == ("no_show", True, True)
    assert api.post(f"/appointments/{appt}/no-show").json()["changed"] is False
    assert api.post("/appointments/4242/attended").status_code == 404
    # Every visit status can be listed, not only booked and cancelled.
    assert [
        a["id"] for a in api.get("/appointments", params={"status": "no_show"}).json()["items"]
    ] == [appt]
    assert api.get("/appointments", params={"status": "attended"}).json()["total"] == 0
    assert api.get("/appointments", params={"status": "gone"}).status_code == 422
    tick(clinic.rt, datetime.now(UTC))
    [text] = clinic.sms_to(PHONE)
    assert (
        text
        == "Riverside Pain & Wellness: we missed you today. Reply R to rebook or call +12125550199."
    )
    clinic.text(PHONE, "R")
    assert (
        clinic.sms_to(PHONE)[-1] == "Riverside Pain & Wellness: We'll call you to find a new time."
    )
    reasons = sorted(f["reason"] for f in clinic.cli.json("followups", "list"))
    assert reasons == ["no_show", "reschedule_request"]
