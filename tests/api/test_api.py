"""The clinician API against the running app: everything the command line does, paginated
lists, problem details, and nothing shown without a valid token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from tests.api.conftest import NY, PHONE, Api, give_history
from tests.integration.clinic import Clinic
from worker.store.db import session_scope
from worker.store.models import AuditEvent

PROBLEM = "application/problem+json"


def audit_actors(clinic: Clinic, action: str) -> list[str]:
    """Who each event records: the installation token as itself, a personal token by its user
    (by id, with the token's id: the trail holds no names anyone typed)."""
    from worker.store.models import ApiToken, User

    out = []
    with session_scope(clinic.rt.sessions) as session:
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.via == "api")
            .order_by(AuditEvent.id)
        )
        for e in events:
            if e.actor == "installation_token":
                assert e.user_id is None and e.token_id is None
                out.append(e.actor)
                continue
            assert e.actor == "token" and e.user_id is not None and e.token_id is not None
            token = session.get(ApiToken, e.token_id)
            user = session.get(User, e.user_id)
            assert token is not None and user is not None and token.user_id == user.id
            out.append(user.name)
    return out


def personal_token(clinic: Clinic, name: str, role: str) -> tuple[int, str]:
    from worker.services.records.accounts import create_user, issue_api_token

    now = datetime.now(UTC)
    with session_scope(clinic.rt.sessions) as session:
        user = create_user(
            session,
            name=name,
            email=f"{role}@clinic.example",
            role=role,
            password="correct horse battery",
            now=now,
        )
        return user.id, issue_api_token(session, user.id, name="tests", now=now)


def every_operation(clinic: Clinic, ids: dict[str, int]) -> list[tuple[str, str]]:
    schema = httpx.get(f"{clinic.base_url}/api/openapi.json").json()
    operations = []
    for path, methods in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        concrete = path
        for name, value in ids.items():
            concrete = concrete.replace("{" + name + "}", str(value))
        operations += [(method.upper(), concrete) for method in methods]
    return operations


def test_without_a_valid_token_no_operation_shows_patient_data(clinic: Clinic) -> None:
    history = give_history(clinic)
    pid = history["patient"]
    ids = {
        "patient_id": pid,
        "appointment_id": history["confirmed"],
        "followup_id": history["acked"],
        "schedule_id": 1,
        "checkin_id": 1,
    }
    operations = every_operation(clinic, ids)
    assert len(operations) >= 25 and not any("{" in path for _, path in operations)
    user_id, revoked = personal_token(clinic, "Dr. Old", "clinician")
    from worker.services.records.accounts import disable_user

    with session_scope(clinic.rt.sessions) as session:
        disable_user(session, user_id, now=datetime.now(UTC))
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer"},
        {"Authorization": "test-token-123"},
        {"Authorization": "Basic dGVzdC10b2tlbi0xMjM="},
        {"Authorization": f"Bearer {revoked}"},
    ]
    for method, path in operations:
        for headers in bad_headers:
            r = httpx.request(method, f"{clinic.base_url}{path}", headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.status_code)
            assert r.headers["content-type"] == PROBLEM
            assert r.headers["www-authenticate"] == "Bearer"
            assert "Pat Doe" not in r.text and PHONE not in r.text
    shown = httpx.get(
        f"{clinic.base_url}/api/patients/{pid}",
        headers={"Authorization": "Bearer test-token-123"},
    )
    assert shown.status_code == 200 and shown.json()["name"] == "Pat Doe"


def test_patients_are_added_with_the_same_validation_as_the_command_line(
    clinic: Clinic, api: Api
) -> None:
    created = api.post(
        "/patients",
        {
            "name": "Alex Rivera",
            "phone": "(212) 555-0101",
            "tz": "America/New_York",
            "channel": "sms",
            "consent": ["sms"],
            "send_window": "09:00-20:00",
        },
    )
    assert created.status_code == 201
    pid = created.json()["id"]
    shown = clinic.cli.json("patients", "show", str(pid))
    assert shown["phone"] == "+12125550101" and shown["consent"]["sms"]["granted"] is True
    assert audit_actors(clinic, "patient.add") == ["installation_token"]

    bad = {"name": "Bad", "phone": "+1212555", "tz": "America/New_York", "channel": "sms"}
    r = api.post("/patients", bad)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    cli_error = clinic.cli.fails(
        "patients",
        "add",
        "--name",
        "Bad",
        "--phone",
        "+1212555",
        "--tz",
        "America/New_York",
        "--channel",
        "sms",
    )
    assert r.json()["detail"] in cli_error
    for body, problem_text in [
        ({**bad, "phone": "+12125550102", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({**bad, "phone": None}, "a phone number is required for the sms channel"),
        ({**bad, "phone": "+12125550102", "send_window": "22:00-08:00"}, "send window"),
        ({**bad, "phone": "+12125550102", "email": "not an address"}, "invalid email"),
    ]:
        r = api.post("/patients", body)
        assert r.status_code == 422 and problem_text in r.json()["detail"], r.text

    # The service names the missing input in its own words; the API adds its field name.
    r = api.post("/patients", {**bad, "phone": None})
    assert r.json()["errors"] == [
        {"field": "body.phone", "message": "a phone number is required for the sms channel"}
    ]
    r = api.post("/patients", {})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"body.name", "body.tz", "body.channel"}
    r = api.post("/patients", {**bad, "phone": "+12125550102", "nmae": "typo"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.nmae"
    r = api.post("/patients", {**bad, "phone": "+12125550102", "name": "Nul\x00"})
    assert r.status_code == 422 and "NUL" in r.json()["detail"]
    r = api.client.post(
        "/patients", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert api.get("/patients").json()["total"] == 1, "nothing was written by refused requests"


def test_lists_are_paginated_with_a_total(clinic: Clinic, api: Api) -> None:
    made = [clinic.patient(f"+1212555010{n}") for n in range(5)]
    seen = []
    for offset in (0, 2, 4, 6):
        page = api.ok("GET", "/patients", limit=2, offset=offset)
        assert (page["total"], page["limit"], page["offset"]) == (5, 2, offset)
        seen += [p["id"] for p in page["items"]]
    assert seen == made
    assert api.ok("GET", "/patients")["limit"] == 50
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "many"}):
        r = api.get("/patients", **params)
        assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("query.")


def test_the_care_plan_through_the_api_matches_the_command_line(clinic: Clinic, api: Api) -> None:
    pid = api.ok(
        "POST",
        "/patients",
        {"name": "Sam Okafor", "phone": "+12125550123", "tz": "America/New_York", "channel": "sms"},
    )["id"]
    monday = datetime.now(NY).date() + timedelta(days=7 - datetime.now(NY).weekday())
    now = datetime(monday.year, monday.month, monday.day, 7, tzinfo=NY).isoformat()

    # Nothing is sent without consent; consent is recorded with its source.
    enrolled = api.ok(
        "POST", f"/patients/{pid}/enrollments", {"protocol": "therapy-weekly", "start": str(monday)}
    )
    assert enrolled["protocol"] == "therapy-weekly" and enrolled["schedules"]
    assert api.ok("GET", f"/patients/{pid}/preview", now=now, days=7)["items"] == []
    granted = api.ok(
        "POST", f"/patients/{pid}/consent", {"channel": "sms", "source": "signed form"}
    )
    assert (granted["granted"], granted["changed"]) == (True, True)
    assert granted["consent"]["sms"]["source"] == "signed form"
    preview = api.ok("GET", f"/patients/{pid}/preview", now=now, days=7, limit=500)
    cli_preview = clinic.cli.json("preview", str(pid), "--days", "7", "--now", now)
    assert preview["items"] == cli_preview and preview["total"] == len(cli_preview) > 0

    # Schedules: added, listed, paused, resumed, removed; the service's refusals are 422s.
    added = api.ok(
        "POST",
        f"/patients/{pid}/schedules",
        {"instrument": "mood_pain", "rrule": "FREQ=DAILY;BYHOUR=19", "start": str(monday)},
    )
    assert added["rrule"] == "FREQ=DAILY;BYHOUR=19;BYMINUTE=0"
    listed = api.ok("GET", f"/patients/{pid}/schedules")["items"]
    assert listed == clinic.cli.json("schedules", "list", str(pid))
    assert api.ok("POST", f"/schedules/{added['id']}/pause")["status"] == "paused"
    assert api.ok("POST", f"/schedules/{added['id']}/resume")["status"] == "active"
    assert api.delete(f"/schedules/{added['id']}").json()["status"] == "removed"
    assert api.get(f"/schedules/{added['id']}").status_code == 404
    daily_phq9 = {"instrument": "phq9", "rrule": "FREQ=DAILY;BYHOUR=9"}
    r = api.post(f"/patients/{pid}/schedules", daily_phq9)
    assert r.status_code == 422 and "weekly" in r.json()["detail"]
    backwards = {**daily_phq9, "rrule": "FREQ=WEEKLY;BYHOUR=9", "start": str(monday),
                 "until": str(monday - timedelta(days=1))}  # fmt: skip
    r = api.post(f"/patients/{pid}/schedules", backwards)
    assert r.status_code == 422 and "--" not in r.text, r.text
    assert r.json()["errors"] == [
        {
            "field": "body.until",
            "message": f"the end date {monday - timedelta(days=1)} is before the start date {monday}",
        }
    ]
    r = api.post(f"/patients/{pid}/enrollments", {"protocol": "nope", "start": str(monday)})
    assert r.status_code == 422 and "therapy-weekly" in r.json()["detail"]

    # Appointments: booked in patient-local time, moved, cancelled.
    at = f"{monday + timedelta(days=2)}T14:00"
    appt = api.ok(
        "POST", f"/patients/{pid}/appointments", {"kind": "therapy", "at": at, "location": "Room 3"}
    )
    assert appt["local_time"].startswith(at) and appt["status"] == "booked"
    moved = api.ok(
        "POST",
        f"/appointments/{appt['id']}/reschedule",
        {"at": f"{monday + timedelta(days=3)}T09:30"},
    )
    assert moved["version"] == 2 and moved["local_time"].startswith(
        f"{monday + timedelta(days=3)}T09:30"
    )
    assert api.ok("GET", "/appointments", patient_id=pid)["items"] == clinic.cli.json(
        "appointments", "list", str(pid)
    )
    r = api.post(f"/patients/{pid}/appointments", {"kind": "therapy", "at": "2001-01-01T10:00"})
    assert r.status_code == 422 and "past" in r.json()["detail"]
    r = api.post(f"/patients/{pid}/appointments", {"kind": "surgery", "at": at})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.kind"
    assert api.ok("POST", f"/appointments/{appt['id']}/cancel")["status"] == "cancelled"
    assert api.ok("GET", "/appointments", patient_id=pid, status="booked")["total"] == 0

    # Withdrawal suppresses what is pending; the show view gathers it all.
    clinic.cli.json("tick", "--now", now)
    withdrawn = api.ok("POST", f"/patients/{pid}/consent", {"channel": "sms", "withdraw": True})
    assert withdrawn["granted"] is False and withdrawn["suppressed"] >= 1
    shown = api.ok("GET", f"/patients/{pid}")
    assert shown["consent"]["sms"]["granted"] is False
    assert [s["id"] for s in shown["schedules"]] == enrolled["schedules"]
    assert shown["enrollments"][0]["id"] == enrolled["id"] and shown["next_messages"] == []
    assert set(audit_actors(clinic, "consent.withdraw")) == {"installation_token"}
    assert set(audit_actors(clinic, "appointment.reschedule")) == {"installation_token"}


def test_checkins_responses_and_messages_match_the_command_line(clinic: Clinic, api: Api) -> None:
    pid = give_history(clinic)["patient"]
    checkins = api.ok("GET", f"/patients/{pid}/checkins")
    assert checkins["total"] == 2
    phq9, mood_pain = checkins["items"]  # newest first
    assert phq9["instrument"] == "phq9" and phq9["status"] == "answered"
    assert phq9["score"] == {"total": 8.0, "band": "mild"}
    assert mood_pain["answers"] == {"mood": 2, "pain": 9} and mood_pain["score"] is None
    assert api.ok("GET", f"/checkins/{phq9['id']}") == phq9
    assert api.ok("GET", f"/patients/{pid}/checkins", status="expired")["items"] == []

    rows = []
    for offset in range(0, 11, 4):
        rows += api.ok("GET", f"/patients/{pid}/responses", limit=4, offset=offset)["items"]
    cli_rows = clinic.cli.json("responses", "list", "--patient", str(pid))
    assert [{k: v for k, v in r.items() if k != "late"} for r in rows] == [
        {k: v for k, v in r.items() if k != "late"} for r in cli_rows
    ]
    assert api.ok("GET", f"/patients/{pid}/responses", instrument="phq9")["total"] == 9

    messages = []
    total = None
    while total is None or len(messages) < total:
        page = api.ok("GET", "/messages", patient_id=pid, limit=7, offset=len(messages))
        total = page["total"]
        messages += page["items"]
    cli_messages = clinic.cli.json("messages", "list", "--patient", str(pid), "--limit", "1000")
    assert sorted(str(m["id"]) for m in messages) == sorted(str(m["id"]) for m in cli_messages)
    assert {m["direction"] for m in messages} == {"in", "out"}
    assert api.get("/messages", patient_id=987654).status_code == 404


def test_personal_tokens_act_as_their_user_and_the_front_desk_sees_no_clinical_data(
    clinic: Clinic,
) -> None:
    history = give_history(clinic)
    pid = history["patient"]
    clinic.text(PHONE, "R")  # a reschedule request for the front desk
    _, clinician_token = personal_token(clinic, "Dr. Ada Lee", "clinician")
    _, desk_token = personal_token(clinic, "Robin Desk", "frontdesk")
    clinician, desk, shared = (
        Api(clinic.base_url, clinician_token),
        Api(clinic.base_url, desk_token),
        Api(clinic.base_url),
    )
    try:
        assert clinician.ok("GET", "/me") == {
            "name": "Dr. Ada Lee",
            "role": "clinician",
            "user_id": 1,
        }
        [low_mood] = [
            f
            for f in clinician.ok("GET", "/followups", status="open")["items"]
            if f["reason"] == "low_mood"
        ]
        acked = clinician.ok("POST", f"/followups/{low_mood['id']}/ack", {"by": "someone else"})
        assert acked["acknowledged_by"] == "Dr. Ada Lee"
        assert audit_actors(clinic, "followup.acknowledge")[-1] == "Dr. Ada Lee"
        # The installation token is recorded as itself; a `by` in the body is ignored.
        resolved = shared.ok(
            "POST", f"/followups/{history['acked']}/resolve", {"note": "called", "by": "Dr. X"}
        )
        assert resolved["resolved_by"] == "installation token"
        assert audit_actors(clinic, "followup.resolve")[-1] == "installation_token"

        visible = desk.ok("GET", "/followups")["items"]
        assert [f["reason"] for f in visible] == ["reschedule_request"]
        assert desk.get(f"/followups/{low_mood['id']}").status_code == 404
        assert desk.post(f"/followups/{low_mood['id']}/ack").status_code == 404
        for path in (
            f"/patients/{pid}/responses",
            f"/patients/{pid}/checkins",
            f"/patients/{pid}/export",
            f"/patients/{pid}/preview",
            f"/patients/{pid}/schedules",
            "/messages",
        ):
            r = desk.get(path)
            assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, path
        shown = desk.ok("GET", f"/patients/{pid}")
        assert shown["phone"] == PHONE and shown["appointments"]
        assert shown["recent_responses"] is shown["schedules"] is shown["next_messages"] is None
        assert [f["reason"] for f in shown["open_followups"]] == ["reschedule_request"]
        day = (datetime.now(NY) + timedelta(days=20)).date()
        booked = desk.post(
            f"/patients/{pid}/appointments", {"kind": "consult", "at": f"{day}T11:00"}
        )
        assert booked.status_code == 201
        assert audit_actors(clinic, "appointment.add")[-1] == "Robin Desk"
        request_id = visible[0]["id"]
        resolved = desk.ok("POST", f"/followups/{request_id}/resolve", {"note": "moved"})
        assert resolved["resolved_by"] == "Robin Desk"
    finally:
        clinician.close()
        desk.close()
        shared.close()


def test_errors_are_problem_details(clinic: Clinic, api: Api) -> None:
    for path in ("/patients/424242", "/appointments/424242", "/followups/424242", "/checkins/9"):
        r = api.get(path)
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, path
        body = r.json()
        assert (body["status"], body["title"]) == (404, "Not found") and body["detail"]
    r = api.get(f"/patients/{2**40}")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "path.patient_id"
    r = api.client.put("/patients")
    assert r.status_code == 405 and r.headers["content-type"] == PROBLEM
    assert r.headers["allow"] == "GET, POST", "every method on the path, not just the first"
    r = api.get("/patients/1/preview", now="2026-01-01T10:00:00")  # no offset
    assert r.status_code == 422
