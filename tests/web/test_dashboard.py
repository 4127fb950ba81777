"""The dashboard over real HTTP: the app served by uvicorn, replies signed by the Twilio emulator,
accounts made by the real service, forms posted as a browser posts them (cookie + CSRF token).
Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from tests.integration.clinic import Clinic
from tests.web.conftest import Account, Browser, add_account, csrf_of
from worker.services.clinical.followups import raise_followup
from worker.store.db import session_scope
from worker.store.models import (
    Appointment,
    AuditEvent,
    Consent,
    Enrollment,
    FollowUp,
    Patient,
    Schedule,
)

PHONE = "+12125550142"
CRISIS = "I want to end my life"


def followup(clinic: Clinic, fid: int) -> FollowUp:
    with session_scope(clinic.rt.sessions) as session:
        item = session.get(FollowUp, fid)
        assert item is not None
        return item


def crisis(clinic: Clinic, name: str = "Pat Doe") -> tuple[int, int]:
    """A patient who texted crisis language: (patient id, urgent follow-up id)."""
    pid = clinic.cli.json(
        "patients", "add", "--name", name, "--phone", PHONE, "--tz", "America/New_York",
        "--channel", "sms", "--consent", "sms",
    )["id"]  # fmt: skip
    clinic.text(PHONE, CRISIS)
    with session_scope(clinic.rt.sessions) as session:
        item = session.scalars(select(FollowUp).where(FollowUp.patient_id == pid)).one()
        assert item.severity == "urgent" and item.status == "open"
        return int(pid), item.id


def audit(clinic: Clinic, action: str) -> list[AuditEvent]:
    with session_scope(clinic.rt.sessions) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def named(clinic: Clinic, event: AuditEvent) -> str:
    """The name of the signed-in user an event records (by id: the trail holds no typed names)."""
    from worker.store.models import User

    assert event.actor == "user" and event.user_id is not None and event.via == "web"
    with session_scope(clinic.rt.sessions) as session:
        user = session.get(User, event.user_id)
        assert user is not None
        return user.name


def local_at(days: int, hour: int, tz: str = "America/New_York") -> str:
    day = (datetime.now(UTC) + timedelta(days=days)).astimezone(ZoneInfo(tz)).date()
    return f"{day.isoformat()}T{hour:02d}:00"


# ---------------------------------------------------------------- nothing without signing in


def test_without_signing_in_no_page_shows_patient_data(clinic: Clinic, web: Browser) -> None:
    pid, fid = crisis(clinic, name="Quentin Private")
    pages = [
        "/",
        "/queue",
        "/queue?status=resolved",
        "/patients",
        "/patients?q=Quentin",
        f"/patients/{pid}",
        f"/patients/{pid}/preview",
        f"/patients/{pid}/edit",
        "/patients/new",
        "/ops",
    ]
    for path in pages:
        r = web.get(path)
        assert r.status_code in (303, 307), (path, r.status_code)
        assert r.headers["location"].startswith("/login") or r.headers["location"] == "/queue"
        assert "Quentin" not in r.text and CRISIS not in r.text
    # The login page itself names nobody.
    login = web.get("/login")
    assert login.status_code == 200 and "Quentin" not in login.text
    # A script gets 401, a form gets sent to the login page; nothing changes either way.
    r = web.http.post(f"/followups/{fid}/ack", headers={"X-Requested-With": "fetch"})
    assert r.status_code == 401 and "Quentin" not in r.text
    r = web.http.post(f"/followups/{fid}/ack", data={"csrf": csrf_of(login.text)})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert followup(clinic, fid).status == "open"
    # A forged cookie is no better than none.
    web.http.cookies.set("checkin_session", "eyJ4Ijoxfq.bm9wZQ", domain="127.0.0.1")
    assert web.get("/queue").headers["location"].startswith("/login")
    # The API: nothing without a token either.
    api = httpx.get(f"{clinic.base_url}/api/followups")
    assert api.status_code == 401 and "Quentin" not in api.text


def test_a_wrong_password_is_refused_and_a_right_one_signs_in(clinic: Clinic, web: Browser) -> None:
    doc = add_account(clinic, "clinician")
    token = web.csrf("/login")
    r = web.http.post(
        "/login", data={"csrf": token, "email": doc.email, "password": "not the password"}
    )
    assert r.status_code == 401 and "Email or password is wrong" in r.text
    assert web.get("/queue").status_code == 303
    # An open redirect through `next` is refused: after sign-in you land on a local page.
    r = web.http.post(
        "/login",
        data={
            "csrf": token,
            "email": doc.email.upper(),
            "password": doc.password,
            "next": "//evil.example/phish",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/queue"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # CHECKIN_PUBLIC_URL is http here
    page = web.get("/queue")
    assert page.status_code == 200 and doc.name in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_the_login_form_needs_its_csrf_token(clinic: Clinic, web: Browser) -> None:
    doc = add_account(clinic, "clinician")
    web.get("/login")
    r = web.http.post("/login", data={"email": doc.email, "password": doc.password})
    assert r.status_code == 403
    assert web.get("/queue").status_code == 303


def test_signing_out_ends_the_session_on_the_server(clinic: Clinic, web: Browser) -> None:
    doc = add_account(clinic, "clinician")
    web.sign_in(doc)
    stolen = web.http.cookies.get("checkin_session")
    assert stolen and web.get("/queue").status_code == 200
    r = web.post("/logout", {})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert web.get("/queue").status_code == 303
    # The old cookie, replayed from elsewhere, no longer works either.
    other = httpx.Client(base_url=clinic.base_url, cookies={"checkin_session": stolen})
    assert other.get("/queue", follow_redirects=False).status_code == 303
    other.close()


def test_a_cookie_from_a_disabled_account_stops_working(clinic: Clinic, web: Browser) -> None:
    from worker.services.records.accounts import disable_user

    doc = add_account(clinic, "clinician")
    web.sign_in(doc)
    assert web.get("/queue").status_code == 200
    with session_scope(clinic.rt.sessions) as session:
        disable_user(session, doc.id, now=datetime.now(UTC))
    assert web.get("/queue").status_code == 303


# ---------------------------------------------------------------- the queue


def test_a_post_without_the_sessions_csrf_token_changes_nothing(
    clinic: Clinic, web: Browser
) -> None:
    _, fid = crisis(clinic)
    doc = add_account(clinic, "clinician")
    web.sign_in(doc)
    good = web.csrf("/queue")
    attempts = [
        ({}, {}),
        ({"csrf": "forged-token-forged-token"}, {}),
        ({"csrf": csrf_of(httpx.get(f"{clinic.base_url}/login").text)}, {}),  # someone else's
        ({"csrf": good}, {"Origin": "http://evil.example"}),
    ]
    for data, headers in attempts:
        r = web.http.post(f"/followups/{fid}/ack", data=data, headers=headers)
        assert r.status_code == 403, (data, headers)
        assert followup(clinic, fid).status == "open"
    r = web.http.post(
        f"/followups/{fid}/ack", data={"csrf": good}, headers={"Origin": clinic.base_url}
    )
    assert r.status_code == 303
    assert followup(clinic, fid).status == "acknowledged"


def test_acknowledge_and_resolve_record_who_and_when(clinic: Clinic, web: Browser) -> None:
    pid, fid = crisis(clinic)
    doc = add_account(clinic, "clinician")
    web.sign_in(doc)
    queue = web.get("/queue").text
    assert "Crisis language in a reply" in queue and "urgent" in queue
    before = datetime.now(UTC)
    r = web.post(f"/followups/{fid}/ack", {"back": "/queue"})
    assert r.status_code == 303 and r.headers["location"].startswith("/queue?done=acknowledged")
    item = followup(clinic, fid)
    assert item.status == "acknowledged" and item.acknowledged_by == "Dr. Rivera"
    assert item.acknowledged_at is not None and item.acknowledged_at >= before
    # An urgent follow-up needs a note: the service's own message, and nothing changes.
    r = web.post(f"/followups/{fid}/resolve", {"note": "  "})
    assert r.status_code == 422
    assert "cannot be resolved without a note of the action taken" in r.text
    assert followup(clinic, fid).status == "acknowledged"
    r = web.post(f"/followups/{fid}/resolve", {"note": "Called her, safety plan reviewed."})
    assert r.status_code == 303
    item = followup(clinic, fid)
    assert (item.status, item.resolved_by) == ("resolved", "Dr. Rivera")
    assert item.resolution_note == "Called her, safety plan reviewed."
    (ack,) = audit(clinic, "followup.acknowledge")
    (res,) = audit(clinic, "followup.resolve")
    assert (named(clinic, ack), ack.entity_id, ack.patient_id) == ("Dr. Rivera", fid, pid)
    assert named(clinic, res) == "Dr. Rivera" and res.detail == {"note": item.resolution_note}
    assert "Called her" in web.get("/queue?status=resolved").text
    assert f'id="f{fid}"' not in web.get("/queue").text  # resolved items leave the open queue


def test_the_script_acknowledges_in_place(clinic: Clinic, web: Browser) -> None:
    _, fid = crisis(clinic)
    web.sign_in(add_account(clinic, "clinician"))
    token = web.csrf("/queue")
    r = web.http.post(
        f"/followups/{fid}/ack",
        data={"back": "/queue"},
        headers={"X-Requested-With": "fetch", "X-CSRF-Token": token},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] and body["status"] == "acknowledged"
    assert f'id="f{fid}"' in body["html"] and "acknowledged by Dr. Rivera" in body["html"]
    r = web.http.post(
        f"/followups/{fid}/resolve",
        data={"note": ""},
        headers={"X-Requested-With": "fetch", "X-CSRF-Token": token},
    )
    assert r.status_code == 422 and "note" in r.json()["error"]


def test_urgent_comes_first_with_its_age_and_sla(clinic: Clinic, web: Browser) -> None:
    pid, fid = crisis(clinic)
    with session_scope(clinic.rt.sessions) as session:
        now = datetime.now(UTC)
        routine, _ = raise_followup(
            session,
            patient_id=pid,
            reason="missed_checkins",
            severity="routine",
            detail={},
            now=now - timedelta(days=2),
        )
        routine_id = routine.id
    web.sign_in(add_account(clinic, "clinician"))
    page = web.get("/queue").text
    assert page.index(f'id="f{fid}"') < page.index(f'id="f{routine_id}"')
    card = page[page.index(f'id="f{routine_id}"') :]
    assert "2 d ago" in card and "SLA to acknowledge 24 h" in card and "overdue" in card


# ---------------------------------------------------------------- escaping


def test_pages_show_what_patients_wrote_as_text(clinic: Clinic, web: Browser) -> None:
    pid = clinic.cli.json(
        "patients", "add", "--name", "<b>Bo</b> & \"Co\"", "--phone", PHONE,
        "--tz", "America/New_York", "--channel", "sms", "--consent", "sms",
    )["id"]  # fmt: skip
    clinic.text(PHONE, "<script>alert('x')</script>")
    clinic.text(PHONE, '<img src=x onerror="alert(1)"> I want to end my life')
    web.sign_in(add_account(clinic, "clinician"))
    for path in ("/queue", "/patients", f"/patients/{pid}", f"/patients/{pid}/edit"):
        html = web.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "<b>Bo</b>" not in html and "&lt;b&gt;Bo&lt;/b&gt; &amp; " in html, path
    patient_page = web.get(f"/patients/{pid}").text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in patient_page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; I want to end my life" in patient_page
    # The only scripts on the page are the app's own file.
    assert re.findall(r"<script[^>]*>", patient_page) == [
        '<script src="/static/dashboard.js" defer>'
    ]


# ---------------------------------------------------------------- forms: the CLI's validation


def test_a_bad_phone_gets_the_command_lines_message_and_writes_nothing(
    clinic: Clinic, web: Browser
) -> None:
    cli_error = clinic.cli.fails(
        "patients", "add", "--name", "X", "--phone", "12", "--tz", "America/New_York",
        "--channel", "sms",
    )  # fmt: skip
    # The service's words, which the CLI ends with its flag (cli/common.py) and the page shows
    # beside the field.
    assert cli_error.strip().endswith(" (--phone)")
    message = cli_error.strip().removeprefix("error: ").removesuffix(" (--phone)")
    web.sign_in(add_account(clinic, "frontdesk"))
    form = {"name": "Xavier New", "phone": "12", "tz": "America/New_York", "channel": "sms",
            "language": "en", "consent_sms": "1"}  # fmt: skip
    r = web.post("/patients/new", form, token_from="/patients/new")
    assert r.status_code == 422
    assert message in r.text
    assert 'value="Xavier New"' in r.text  # the form comes back filled in
    with session_scope(clinic.rt.sessions) as session:
        assert session.scalars(select(Patient)).all() == []


def test_adding_and_editing_a_patient(clinic: Clinic, web: Browser) -> None:
    web.sign_in(add_account(clinic, "frontdesk"))
    form = {"name": "Nora New", "phone": "(212) 555-0177", "email": "", "tz": "America/Chicago",
            "channel": "sms", "language": "es", "send_window": "09:00-19:00",
            "consent_sms": "1", "consent_source": "signed intake form"}  # fmt: skip
    r = web.post("/patients/new", form, token_from="/patients/new")
    assert r.status_code == 303
    pid = int(r.headers["location"].split("/")[2].split("?")[0])
    with session_scope(clinic.rt.sessions) as session:
        p = session.get(Patient, pid)
        assert p is not None and (p.phone, p.tz, p.language) == (
            "+12125550177",
            "America/Chicago",
            "es",
        )
        (c,) = session.scalars(select(Consent).where(Consent.patient_id == pid)).all()
        assert (c.channel, c.source, c.withdrawn_at) == ("sms", "signed intake form", None)
    # A new phone number: consent was for the old one, so it is withdrawn.
    form |= {"phone": "+12125550188", "name": "Nora Newer"}
    r = web.post(f"/patients/{pid}/edit", form, token_from=f"/patients/{pid}/edit")
    assert r.status_code == 303 and r.headers["location"].endswith("done=patient_saved")
    with session_scope(clinic.rt.sessions) as session:
        p = session.get(Patient, pid)
        assert p is not None and (p.name, p.phone) == ("Nora Newer", "+12125550188")
        (c,) = session.scalars(select(Consent).where(Consent.patient_id == pid)).all()
        assert c.withdrawn_at is not None and c.withdrawn_source == "phone changed by Jo Desk"
    (event,) = audit(clinic, "patient.update")
    assert named(clinic, event) == "Jo Desk" and set(event.detail["changed"]) == {"name", "phone"}
    # Bad input on the edit form: the same message, nothing changed.
    r = web.post(
        f"/patients/{pid}/edit", form | {"tz": "Mars/Olympus"}, token_from=f"/patients/{pid}/edit"
    )
    assert r.status_code == 422 and "Mars/Olympus" in r.text
    with session_scope(clinic.rt.sessions) as session:
        p = session.get(Patient, pid)
        assert p is not None and p.tz == "America/Chicago"


def test_booking_rescheduling_and_cancelling_through_the_forms(
    clinic: Clinic, web: Browser
) -> None:
    pid = clinic.patient(PHONE)
    web.sign_in(add_account(clinic, "frontdesk"))
    page = f"/patients/{pid}"
    r = web.post(f"{page}/appointments", {"kind": "infusion", "at": local_at(-1, 10)},
                 token_from=page)  # fmt: skip
    assert r.status_code == 422 and "the appointment time is in the past" in r.text
    r = web.post(f"{page}/appointments", {"kind": "surgery", "at": local_at(5, 10)},
                 token_from=page)  # fmt: skip
    assert r.status_code == 422 and "the appointment kind must be one of" in r.text
    at = local_at(5, 14)
    r = web.post(f"{page}/appointments", {"kind": "infusion", "at": at, "location": "Suite 2"},
                 token_from=page)  # fmt: skip
    assert r.status_code == 303
    with session_scope(clinic.rt.sessions) as session:
        (appt,) = session.scalars(select(Appointment)).all()
        aid = appt.id
        assert appt.location == "Suite 2"
        assert (
            appt.starts_at.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%dT%H:%M") == at
        )
    preview = web.get(f"{page}/preview?days=7").text
    assert preview.count('data-kind="reminder"') == 4  # 72 h, 24 h, 2 h and the evening before
    assert "reminder_infusion" in preview and "infusion_prep" in preview
    r = web.post(f"/appointments/{aid}/reschedule", {"at": local_at(6, 9)}, token_from=page)
    assert r.status_code == 303
    r = web.post(f"/appointments/{aid}/reschedule", {"at": "tomorrow"}, token_from=page)
    assert r.status_code == 422 and "the appointment time must be YYYY-MM-DDTHH:MM" in r.text
    r = web.post(f"/appointments/{aid}/cancel", {}, token_from=page)
    assert r.status_code == 303
    with session_scope(clinic.rt.sessions) as session:
        appt = session.get(Appointment, aid)
        assert appt is not None and (appt.status, appt.version) == ("cancelled", 2)
    assert 'data-kind="reminder"' not in web.get(f"{page}/preview?days=7").text
    actors = {(e.action, named(clinic, e)) for e in audit(clinic, "appointment.add")
              + audit(clinic, "appointment.reschedule") + audit(clinic, "appointment.cancel")}  # fmt: skip
    assert actors == {
        ("appointment.add", "Jo Desk"),
        ("appointment.reschedule", "Jo Desk"),
        ("appointment.cancel", "Jo Desk"),
    }


def test_schedules_and_enrollment_through_the_forms(clinic: Clinic, web: Browser) -> None:
    pid = clinic.patient(PHONE)
    web.sign_in(add_account(clinic, "clinician"))
    page = f"/patients/{pid}"
    r = web.post(f"{page}/schedules", {"instrument": "phq9", "frequency": "DAILY", "time": "09:30"},
                 token_from=page)  # fmt: skip
    assert r.status_code == 422 and "phq9" in r.text  # PHQ-9 at most weekly, as on the CLI
    r = web.post(f"{page}/schedules", {"instrument": "phq9", "frequency": "WEEKLY",
                 "weekday": "MO", "time": "09:30"}, token_from=page)  # fmt: skip
    assert r.status_code == 303
    r = web.post(f"{page}/schedules", {"instrument": "mood", "rrule": "FREQ=DAILY;BYHOUR=19"},
                 token_from=page)  # fmt: skip
    assert r.status_code == 303
    with session_scope(clinic.rt.sessions) as session:
        weekly, daily = session.scalars(select(Schedule).order_by(Schedule.id)).all()
    assert weekly.rrule == clinic.cli.json("schedules", "list", str(pid))[0]["rrule"]
    assert "FREQ=WEEKLY" in weekly.rrule and "BYDAY=MO" in weekly.rrule
    assert "BYHOUR=9" in weekly.rrule and "BYMINUTE=30" in weekly.rrule
    sid = daily.id
    r = web.post(f"/schedules/{sid}/status", {"status": "paused"}, token_from=page)
    assert r.status_code == 303
    assert clinic.cli.json("schedules", "list", str(pid))[1]["status"] == "paused"
    r = web.post(f"{page}/enroll", {"protocol": "no-such-protocol", "start": "2026-12-01"},
                 token_from=page)  # fmt: skip
    assert r.status_code == 422 and "unknown protocol" in r.text
    r = web.post(f"{page}/enroll", {"protocol": "therapy-weekly", "start": "2026-12-01"},
                 token_from=page)  # fmt: skip
    assert r.status_code == 303
    with session_scope(clinic.rt.sessions) as session:
        (enrollment,) = session.scalars(select(Enrollment)).all()
        assert enrollment.protocol == "therapy-weekly"
    assert {named(clinic, e) for e in audit(clinic, "schedule.add")} == {"Dr. Rivera"}
    assert [named(clinic, e) for e in audit(clinic, "schedule.pause")] == ["Dr. Rivera"]


def test_withdrawing_consent_from_the_patient_page(clinic: Clinic, web: Browser) -> None:
    pid = clinic.patient(PHONE)
    web.sign_in(add_account(clinic, "frontdesk"))
    page = f"/patients/{pid}"
    r = web.post(f"{page}/consent", {"channel": "sms", "action": "withdraw",
                 "source": "patient phoned"}, token_from=page)  # fmt: skip
    assert r.status_code == 303
    state = clinic.cli.json("patients", "show", str(pid))["consent"]["sms"]
    assert not state["granted"] and state["withdrawn_source"] == "patient phoned"
    assert "opted out" in web.get(page).text
    r = web.post(f"{page}/consent", {"channel": "email", "action": "grant"}, token_from=page)
    assert r.status_code == 422 and "the patient has no email address" in r.text


# ---------------------------------------------------------------- roles


def test_the_front_desk_sees_appointment_requests_but_no_clinical_data(
    clinic: Clinic, web: Browser
) -> None:
    pid, crisis_id = crisis(clinic)
    with session_scope(clinic.rt.sessions) as session:
        item, _ = raise_followup(
            session,
            patient_id=pid,
            reason="reschedule_request",
            severity="routine",
            detail={"note": "Patient replied R."},
            now=datetime.now(UTC),
        )
        desk_id = item.id
    desk = add_account(clinic, "frontdesk")
    web.sign_in(desk)
    queue = web.get("/queue").text
    assert f'id="f{desk_id}"' in queue and f'id="f{crisis_id}"' not in queue
    assert "Crisis" not in queue
    page = web.get(f"/patients/{pid}").text
    assert "Pat Doe" in page and "Book an appointment" in page
    for clinical in (CRISIS, "Conversation", "Check-ins over time", "Check-in schedules"):
        assert clinical not in page
    # Server-side, not just hidden: the crisis item cannot be touched, nor schedules changed.
    r = web.post(f"/followups/{crisis_id}/ack", {})
    assert r.status_code == 403 and followup(clinic, crisis_id).status == "open"
    page_path = f"/patients/{pid}"
    r = web.post(f"{page_path}/enroll", {"protocol": "therapy-weekly", "start": "2026-12-01"},
                 token_from=page_path)  # fmt: skip
    assert r.status_code == 403
    r = web.post(f"{page_path}/schedules", {"instrument": "mood", "rrule": "FREQ=DAILY;BYHOUR=9"},
                 token_from=page_path)  # fmt: skip
    assert r.status_code == 403
    assert web.get("/ops").status_code == 403
    with session_scope(clinic.rt.sessions) as session:
        assert session.scalars(select(Schedule)).all() == []
    r = web.post(f"/followups/{desk_id}/ack", {})
    assert r.status_code == 303 and followup(clinic, desk_id).acknowledged_by == "Jo Desk"


def test_clinicians_see_the_operations_page(clinic: Clinic, web: Browser) -> None:
    crisis(clinic)
    web.sign_in(add_account(clinic, "clinician"))
    page = web.get("/ops")
    assert page.status_code == 200
    for label in (
        "Urgent queue",
        "Bulk queue",
        "Lag",
        "Failed, last hour",
        "Recent provider errors",
    ):
        assert label in page.text
    assert PHONE not in page.text and CRISIS not in page.text  # ids and codes, no PHI


def test_an_unknown_patient_is_a_404_page(clinic: Clinic, web: Browser) -> None:
    web.sign_in(add_account(clinic, "clinician"))
    r = web.get("/patients/9999")
    assert r.status_code == 404 and "no patient with id 9999" in r.text
    r = web.post("/appointments/9999/cancel", {})
    assert r.status_code == 404


def test_admins_have_every_page(clinic: Clinic, web: Browser) -> None:
    pid, _ = crisis(clinic)
    admin: Account = add_account(clinic, "admin")
    web.sign_in(admin)
    for path in ("/queue", "/patients", f"/patients/{pid}", "/ops", "/patients/new"):
        assert web.get(path).status_code == 200, path
    assert CRISIS in web.get(f"/patients/{pid}").text


@pytest.mark.parametrize("public_url", ["https://clinic.example"])
def test_the_cookie_is_secure_behind_https(sqlite_url: str, public_url: str) -> None:
    from starlette.responses import Response

    from tests.conftest import make_settings
    from worker.services.runtime import build_runtime
    from worker.web.auth import COOKIE, Sessions, anonymous

    rt = build_runtime(make_settings(sqlite_url, public_url=public_url))
    try:
        response = Response()
        Sessions(rt).write(response, anonymous(datetime.now(UTC)))
        header = response.headers["set-cookie"].lower()
        assert header.startswith(COOKIE) and "secure" in header and "httponly" in header
    finally:
        rt.close()


def test_the_front_desk_sees_appointment_replies_in_the_patients_words(
    clinic: Clinic, web: Browser
) -> None:
    pid = clinic.patient(PHONE)
    at = local_at(3, 15)
    clinic.cli.json("appointments", "add", str(pid), "--kind", "therapy", "--at", at)
    starts = datetime.fromisoformat(at).replace(tzinfo=ZoneInfo("America/New_York"))
    clinic.cli.json("tick", "--now", (starts - timedelta(days=1)).isoformat())
    clinic.text(PHONE, "running 10 min late")
    clinic.text(PHONE, "can we move it?")
    web.sign_in(add_account(clinic, "frontdesk"))
    queue = web.get("/queue").text
    assert "Running late" in queue
    assert "Reschedule request" in queue
