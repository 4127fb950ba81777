"""Access control (issue 12) over real HTTP against the real app, on SQLite and PostgreSQL:
two-factor sign-in, throttling and locks, session timeouts and revocation, the audit trail of
every access, and the headers. Time moves through the runtime's injected clock, never sleep."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyotp
import pytest
from checkin_emulator import TwilioEmulator
from sqlalchemy import select, text

from tests.integration.clinic import Clinic, open_clinic
from tests.web.conftest import Account, Browser, add_account, csrf_of
from worker.config import ConfigError, Settings
from worker.store.db import session_scope
from worker.store.models import AuditEvent, User

T0 = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **kw: float) -> None:
        self.at += timedelta(**kw)


@pytest.fixture
def clock(clinic: Clinic) -> Clock:
    c = Clock(T0)
    clinic.rt.clock = c
    return c


@pytest.fixture
def mfa_clinic(
    db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object
) -> Iterator[Clinic]:
    c = open_clinic(db_url, twilio_emulator, smtp_server, CHECKIN_REQUIRE_2FA="1")
    c.rt.clock = Clock(T0)
    yield c
    c.close()


def events(clinic: Clinic, action: str) -> list[AuditEvent]:
    with session_scope(clinic.rt.sessions) as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def user(clinic: Clinic, user_id: int) -> User:
    with session_scope(clinic.rt.sessions) as session:
        u = session.get(User, user_id)
        assert u is not None
        return u


def password_step(
    b: Browser, account: Account, next_: str = "/queue", password: str | None = None
) -> httpx.Response:
    return b.http.post(
        "/login",
        data={
            "csrf": b.csrf("/login"),
            "email": account.email,
            "password": password if password is not None else account.password,
            "next": next_,
        },
    )


def code_step(b: Browser, code: str, next_: str) -> httpx.Response:
    page = b.get(f"/login/2fa?next={next_}")
    return b.http.post("/login/2fa", data={"csrf": csrf_of(page.text), "code": code, "next": next_})


# ---------------------------------------------------------------- two-factor sign-in


def test_a_clinician_enrols_at_first_sign_in_then_needs_a_code(mfa_clinic: Clinic) -> None:
    clinic = mfa_clinic
    now = clinic.rt.now()
    account = add_account(clinic, "clinician")
    b = Browser(clinic.base_url)
    try:
        r = password_step(b, account, "/patients")
        assert r.status_code == 303 and r.headers["location"] == "/login/2fa?next=%2Fpatients"
        # Between the password and the code nothing is shown: back to the code.
        r = b.get("/queue")
        assert r.status_code == 303 and r.headers["location"] == "/login/2fa?next=%2Fqueue"
        page = b.get("/login/2fa?next=/patients")
        assert (
            page.status_code == 200
            and "<svg" in page.text
            and "<script" not in page.text.split("</head>")[1]
        )
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
        assert secret and secret.group(1) == user(clinic, account.id).totp_secret
        totp = pyotp.TOTP(secret.group(1))
        wrong = code_step(b, "000000" if totp.at(now) != "000000" else "111111", "/patients")
        assert wrong.status_code == 401 and "That code is not right" in wrong.text
        done = code_step(b, totp.at(now), "/patients")
        assert done.status_code == 200
        codes = re.findall(r"<li><code>([0-9a-f]{8}-[0-9a-f]{8})</code></li>", done.text)
        assert len(codes) == 10 and 'href="/patients"' in done.text
        assert b.get("/patients").status_code == 200
        u = user(clinic, account.id)
        assert u.totp_confirmed_at is not None and len(u.recovery_codes or []) == 10
        assert codes[0] not in str(u.recovery_codes)  # stored hashed
        # Next time: password, then a code; a recovery code works once.
        b.close()
        b = Browser(clinic.base_url)
        r = password_step(b, account, "/patients/new")
        assert r.headers["location"] == "/login/2fa?next=%2Fpatients%2Fnew"
        r = code_step(b, codes[0], "/patients/new")
        assert r.status_code == 303 and r.headers["location"] == "/patients/new"
        b.close()
        b = Browser(clinic.base_url)
        password_step(b, account)
        assert code_step(b, codes[0], "/queue").status_code == 401  # spent
        assert code_step(b, totp.at(now), "/queue").status_code == 401  # a code works once
        clinic.rt.clock.advance(seconds=30)  # type: ignore[union-attr]
        assert (
            code_step(b, totp.at(now + timedelta(seconds=30)), "/queue").headers["location"]
            == "/queue"
        )
    finally:
        b.close()
    methods = [e.detail["method"] for e in events(clinic, "sign_in")]
    assert methods == ["totp", "recovery_code", "totp"]
    assert [e.user_id for e in events(clinic, "2fa_enrolled")] == [account.id]
    # The failed codes count as failed sign-ins, with the user and the address.
    failed = events(clinic, "sign_in_failed")
    assert [(e.user_id, e.detail["reason"], e.address) for e in failed] == [
        (account.id, "second_factor", "127.0.0.1")
    ] * 3


def test_users_add_json_and_reset_2fa(mfa_clinic: Clinic) -> None:
    clinic = mfa_clinic
    env_cli = clinic.cli
    from typer.testing import CliRunner

    from worker.cli import app

    r = CliRunner().invoke(
        app,
        ["users", "add", "--name", "Ada", "--email", "ada@clinic.example", "--role", "admin",
         "--password-stdin", "--json"],
        input="a long enough password\n",
        env=env_cli.env,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    import json

    data = json.loads(r.stdout)
    uri = data["otpauth_uri"]
    assert uri.startswith("otpauth://totp/") and "secret=" in uri
    desk = add_account(clinic, "frontdesk")
    listed = {u["id"]: u for u in env_cli.json("users", "list")}
    assert listed[data["id"]]["two_factor"] is False  # not enrolled until a first code
    reset = env_cli.json("users", "reset-2fa", str(data["id"]))
    assert reset["otpauth_uri"] != uri and reset["two_factor"] is False
    assert [e.entity_id for e in events(clinic, "2fa_reset")] == [data["id"]]
    assert events(clinic, "2fa_reset")[0].actor.startswith("cli:")
    # The front desk role does not need a second factor (unless it enrolled).
    b = Browser(clinic.base_url)
    try:
        r = password_step(b, desk)
        assert r.status_code == 303 and r.headers["location"] == "/queue"
    finally:
        b.close()


# ---------------------------------------------------------------- throttling


def test_ten_failures_lock_the_account_even_for_the_right_password(
    clinic: Clinic, clock: Clock
) -> None:
    account = add_account(clinic, "clinician")
    b = Browser(clinic.base_url)
    try:
        codes = []
        for _ in range(10):
            codes.append(password_step(b, account, password="wrong password!").status_code)
            clock.advance(seconds=70)  # past any back-off, inside the 15-minute window
        assert codes[:9] == [401] * 9
        r = password_step(b, account)
        assert r.status_code == 429 and "locked" in r.text and "minutes" in r.text
        assert int(r.headers["Retry-After"]) > 0
        assert user(clinic, account.id).locked_until is not None
        # An administrator unlocks it.
        clinic.cli.run("users", "unlock", str(account.id))
        assert user(clinic, account.id).locked_until is None
        assert password_step(b, account).status_code == 303
    finally:
        b.close()
    failed = events(clinic, "sign_in_failed")
    assert {(e.user_id, e.address, e.via) for e in failed} == {(account.id, "127.0.0.1", "web")}
    assert [e.detail["reason"] for e in failed] == ["password"] * 10 + ["locked"]
    assert [e.entity_id for e in events(clinic, "unlock")] == [account.id]
    metrics = httpx.get(f"{clinic.base_url}/metrics").text
    assert 'checkin_signin_failures_total{reason="password"} 10.0' in metrics
    assert 'checkin_signin_failures_total{reason="locked"} 1.0' in metrics


def test_back_off_refuses_quick_retries_and_the_lock_expires(clinic: Clinic, clock: Clock) -> None:
    account = add_account(clinic, "clinician")
    b = Browser(clinic.base_url)
    try:
        statuses = [
            password_step(b, account, password="wrong password!").status_code for _ in range(10)
        ]
        # Three tries, then each quick retry is refused unchecked (and counts).
        assert statuses == [401, 401, 401] + [429] * 7
        r = password_step(b, account)
        assert r.status_code == 429 and "locked" in r.text
        clock.advance(minutes=16)
        assert password_step(b, account).status_code == 303
    finally:
        b.close()
    reasons = [e.detail["reason"] for e in events(clinic, "sign_in_failed")]
    assert reasons == ["password"] * 3 + ["backoff"] * 7 + ["locked"]


# ---------------------------------------------------------------- sessions


def test_idle_sessions_end_and_sessions_can_be_listed_and_revoked(
    clinic: Clinic, clock: Clock
) -> None:
    account = add_account(clinic, "clinician")
    a, b = Browser(clinic.base_url), Browser(clinic.base_url)
    try:
        a.sign_in(account)
        b.sign_in(account)
        clock.advance(minutes=14)
        assert a.get("/queue").status_code == 200  # activity keeps it alive
        clock.advance(minutes=14)
        assert a.get("/queue").status_code == 200
        r = b.get("/queue")  # 28 idle minutes
        assert r.status_code == 303 and "done=idle" in r.headers["location"]
        b.close()
        b = Browser(clinic.base_url)
        b.sign_in(account)
        listing = a.get("/account/sessions").text
        ids = [int(i) for i in re.findall(r"/account/sessions/(\d+)/revoke", listing)]
        assert len(ids) == 2
        other = max(ids)
        r = a.post(f"/account/sessions/{other}/revoke", {}, token_from="/account/sessions")
        assert r.status_code == 303
        assert b.get("/queue").status_code == 303  # B is signed out
        # A password change ends every other session, not this one.
        b.close()
        b = Browser(clinic.base_url)
        b.sign_in(account)
        r = a.post(
            "/account/password",
            {"current": account.password, "new": "another long password", "repeat": "another long password"},
            token_from="/account/sessions",
        )  # fmt: skip
        assert r.status_code == 303
        assert a.get("/queue").status_code == 200 and b.get("/queue").status_code == 303
        r = a.post("/logout/everywhere", {}, token_from="/account/sessions")
        assert r.status_code == 303 and a.get("/queue").status_code == 303
    finally:
        a.close()
        b.close()
    assert len(events(clinic, "password_changed")) == 1


# ---------------------------------------------------------------- the audit trail


def test_every_access_is_audited_with_the_user(clinic: Clinic) -> None:
    from worker.services.records.accounts import issue_api_token

    pid = clinic.patient("+12125550143")
    clinician = add_account(clinic, "clinician")
    with session_scope(clinic.rt.sessions) as session:
        token = issue_api_token(session, clinician.id, name="script", now=datetime.now(UTC))
    web = Browser(clinic.base_url)
    try:
        web.sign_in(clinician)
        assert web.get(f"/patients/{pid}").status_code == 200
        # A failed sign-in of a known account.
        bad = Browser(clinic.base_url)
        assert password_step(bad, clinician, password="not the password").status_code == 401
        bad.close()
    finally:
        web.close()
    api = httpx.Client(
        base_url=f"{clinic.base_url}/api", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        r = api.get(f"/patients/{pid}")
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        assert api.get("/audit").status_code == 403  # clinicians do not read the trail
    finally:
        api.close()
    clinic.cli.run("export", "--patient", str(pid), "--format", "csv")

    views = [e for e in events(clinic, "view") if e.patient_id == pid]
    web_view = next(e for e in views if e.via == "web")
    api_view = next(e for e in views if e.via == "api")
    assert (web_view.user_id, web_view.actor, web_view.address) == (
        clinician.id,
        "user",
        "127.0.0.1",
    )
    assert (api_view.user_id, api_view.actor) == (clinician.id, "token")
    assert api_view.token_id is not None and api_view.address == "127.0.0.1"
    (export,) = events(clinic, "export")
    assert export.via == "cli" and export.actor.startswith("cli:") and export.patient_id == pid
    assert export.detail == {"format": "csv"}
    (failed,) = events(clinic, "sign_in_failed")
    assert (failed.user_id, failed.address, failed.detail) == (
        clinician.id, "127.0.0.1", {"reason": "password"},
    )  # fmt: skip

    listed = clinic.cli.json("audit", "list", "--patient", str(pid))
    assert {(e["action"], e["via"]) for e in listed} >= {
        ("view", "web"),
        ("view", "api"),
        ("export", "cli"),
    }
    assert all(e["patient_id"] == pid for e in listed)
    mine = clinic.cli.json("audit", "list", "--user", str(clinician.id))
    assert {e["user_name"] for e in mine} == {clinician.name}
    admin = httpx.get(
        f"{clinic.base_url}/api/audit",
        params={"patient_id": pid},
        headers={"Authorization": "Bearer test-token-123"},
    )
    assert admin.status_code == 200 and admin.json()["total"] >= 3
    assert clinic.cli.fails("audit", "list", "--since", "yesterday").startswith("error: --since")


def test_the_audit_trail_refuses_update_and_delete(clinic: Clinic) -> None:
    clinic.patient("+12125550143")
    assert events(clinic, "patient.add")
    for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
        with (
            pytest.raises(Exception, match="append-only"),
            session_scope(clinic.rt.sessions) as session,
        ):
            session.execute(text(statement))
    assert events(clinic, "patient.add")[0].actor.startswith("cli:")


def test_the_installation_token_is_recorded_as_itself(clinic: Clinic) -> None:
    pid = clinic.patient("+12125550143")
    r = httpx.get(
        f"{clinic.base_url}/api/patients/{pid}", headers={"Authorization": "Bearer test-token-123"}
    )
    assert r.status_code == 200
    (view,) = [e for e in events(clinic, "view") if e.via == "api"]
    assert (view.actor, view.user_id, view.token_id) == ("installation_token", None, None)


# ---------------------------------------------------------------- pages and headers


def test_api_docs_are_local_and_behind_sign_in(clinic: Clinic) -> None:
    b = Browser(clinic.base_url)
    try:
        r = b.get("/api/docs")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        b.sign_in(add_account(clinic, "clinician"))
        r = b.get("/api/docs")
        assert r.status_code == 200 and "/api/patients/{patient_id}/export" in r.text
        scripts = re.findall(r"<script[^>]*>", r.text)
        assert scripts == ['<script src="/static/dashboard.js" defer>']
        assert "cdn" not in r.text.lower() and "http://" not in r.text.split("<main>")[1]
        assert "script-src 'self'" in r.headers["content-security-policy"]
    finally:
        b.close()


def test_docs_off_metrics_token_and_hsts(
    db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object
) -> None:
    c = open_clinic(
        db_url, twilio_emulator, smtp_server,
        CHECKIN_API_DOCS="0", CHECKIN_METRICS_TOKEN="metrics-secret-1", CHECKIN_PUBLIC_URL="https://clinic.example",
    )  # fmt: skip
    try:
        assert httpx.get(f"{c.base_url}/api/docs").status_code == 404
        assert httpx.get(f"{c.base_url}/metrics").status_code == 401
        ok = httpx.get(
            f"{c.base_url}/metrics", headers={"Authorization": "Bearer metrics-secret-1"}
        )
        assert ok.status_code == 200 and "checkin_signin_failures_total" in ok.text
        health = httpx.get(f"{c.base_url}/healthz")
        assert health.headers["strict-transport-security"].startswith("max-age=")
    finally:
        c.close()


def test_no_hsts_over_plain_http(clinic: Clinic) -> None:
    assert "strict-transport-security" not in httpx.get(f"{clinic.base_url}/healthz").headers


def test_the_secret_key_is_required_outside_development() -> None:
    real: dict[str, Any] = {
        "_env_file": None,
        "sms_backend": "twilio",
        "twilio_account_sid": "AC" + "0" * 32,
        "twilio_auth_token": "t" * 32,
        "twilio_from_number": "+12125550000",
    }
    with pytest.raises(ConfigError, match=r"^CHECKIN_SECRET_KEY: required outside development"):
        Settings(**real).require_secret_key()
    Settings(**real, secret_key="k" * 40).require_secret_key()
    Settings(_env_file=None).require_secret_key()  # console backends: development
    assert Settings(_env_file=None).is_development and not Settings(**real).is_development


def test_link_and_session_keys_are_derived_apart() -> None:
    from worker.keys import EMAIL_LINKS, SESSIONS, derive

    root = b"k" * 40
    assert derive(root, EMAIL_LINKS) != derive(root, SESSIONS)
    assert derive(root, EMAIL_LINKS) != root[:32] and len(derive(root, SESSIONS)) == 32
    assert derive(root, SESSIONS) == derive(root, SESSIONS)


def test_dashboard_forms_have_the_same_input_limits(clinic: Clinic) -> None:
    from worker.store.models import Patient

    b = Browser(clinic.base_url)
    try:
        b.sign_in(add_account(clinic, "frontdesk"))
        form = {"phone": "(212) 555-0177", "tz": "America/Chicago", "channel": "sms",
                "language": "en", "consent_sms": "1"}  # fmt: skip
        for name, message in (
            ("A" * 50_000 + "\x00", "name is longer than 200 characters"),
            ("Alex\x00Rivera", "name must not contain NUL characters"),
            ("Alex \u202eareviR", "name must not contain bidirectional control characters"),
        ):
            r = b.post("/patients/new", {**form, "name": name}, token_from="/patients/new")
            assert r.status_code == 422 and message in r.text
    finally:
        b.close()
    err = clinic.cli.fails(
        "patients", "add", "--name", "Alex \u202eareviR", "--phone", "+12125550177",
        "--tz", "America/Chicago", "--channel", "sms",
    )  # fmt: skip
    assert "bidirectional control characters" in err
    with session_scope(clinic.rt.sessions) as session:
        assert session.scalars(select(Patient)).all() == []


def test_a_refused_webhook_is_logged_with_address_and_reason(
    clinic: Clinic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="worker.web.webhooks")
    r = httpx.post(
        f"{clinic.base_url}/webhooks/twilio/sms",
        data={"From": "+12125550143", "Body": "my private words", "MessageSid": "SM1"},
    )
    assert r.status_code == 403
    (line,) = [m for m in caplog.messages if "webhook" in m and "refused" in m]
    assert "address=127.0.0.1" in line and "reason=missing or unverifiable signature" in line
    assert "private" not in line and "+1212" not in line


def test_a_busy_session_still_ends_twelve_hours_after_sign_in(clinic: Clinic, clock: Clock) -> None:
    account = add_account(clinic, "clinician")
    b = Browser(clinic.base_url)
    try:
        b.sign_in(account)
        for _ in range(71):  # a request every 10 minutes: never idle
            clock.advance(minutes=10)
            assert b.get("/queue").status_code == 200
        clock.advance(minutes=11)  # 12 h 1 min after signing in
        r = b.get("/queue")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
    finally:
        b.close()


def test_api_audit_filters_and_refuses_bad_times(clinic: Clinic) -> None:
    pid = clinic.patient("+12125550143")
    headers = {"Authorization": "Bearer test-token-123"}
    base = f"{clinic.base_url}/api/audit"
    for bad in ("yesterday", "2026-12-01T00:00:00", "0001-01-01T00:00:00+01:00"):
        r = httpx.get(base, params={"since": bad}, headers=headers)
        assert r.status_code == 422, (bad, r.text)
    page = httpx.get(base, params={"patient_id": pid, "limit": 5}, headers=headers).json()
    assert page["items"] and {e["patient_id"] for e in page["items"]} == {pid}
    assert page["limit"] == 5 and page["total"] >= 1
    later = httpx.get(base, params={"since": "2099-01-01T00:00:00+00:00"}, headers=headers)
    assert later.json()["items"] == []
