"""Access control in a real browser (Debian's Chromium through Playwright): enrolling a second
factor and signing in with a code, the lock after repeated failures, the idle logout (time
passed through the runtime's injected clock), and the API docs page loading nothing from
elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from checkin_emulator import TwilioEmulator

from tests.integration.clinic import Clinic, open_clinic
from tests.web.conftest import add_account
from tests.web.test_browser import DESKTOP

pytestmark = pytest.mark.browser


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def mfa_clinic(
    sqlite_url: str, twilio_emulator: TwilioEmulator, smtp_server: object
) -> Iterator[Clinic]:
    c = open_clinic(sqlite_url, twilio_emulator, smtp_server, CHECKIN_REQUIRE_2FA="1")
    yield c
    c.close()


def new_page(chromium: Any, clinic: Clinic) -> tuple[Any, Any, list[str]]:
    context = chromium.new_context(viewport=DESKTOP, base_url=clinic.base_url)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    requests: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    # A CSP violation (an inline style in the QR code, a script from elsewhere) is a console
    # error in Chromium: collected here and checked by the tests that must have none.
    pg.on(
        "console",
        lambda m: (
            requests.append(f"console error: {m.text}")
            if m.type == "error" and "the server responded with a status of 4" not in m.text
            else None
        ),
    )
    return context, pg, requests


def fill_login(pg: Any, email: str, password: str) -> None:
    pg.fill("#email", email)
    pg.fill("#password", password)
    pg.click("button:has-text('Sign in')")


def test_enrol_a_second_factor_then_sign_in_with_a_code(chromium: Any, mfa_clinic: Clinic) -> None:
    clinic = mfa_clinic
    clock = Clock()
    clinic.rt.clock = clock
    account = add_account(clinic, "clinician")
    context, pg, requests = new_page(chromium, clinic)
    try:
        pg.goto("/patients")
        assert "/login" in pg.url
        fill_login(pg, account.email, account.password)
        pg.wait_for_url("**/login/2fa?next=%2Fpatients")
        assert pg.locator("#qr svg").count() == 1  # the QR code, drawn on the server
        secret = pg.inner_text("#totp-secret").strip()
        totp = pyotp.TOTP(secret)
        pg.fill("#code", totp.at(clock()))
        pg.click("button:has-text('Continue')")
        assert pg.locator("#recovery-codes li").count() == 10
        pg.click("#continue")
        pg.wait_for_url("**/patients")
        assert pg.locator("h1").first.is_visible()
        # Sign out; next time the code is asked for, and `next` is kept through it.
        pg.click("button:has-text('Sign out')")
        pg.goto("/patients/new")
        fill_login(pg, account.email, account.password)
        pg.wait_for_url("**/login/2fa?next=%2Fpatients%2Fnew")
        assert pg.locator("#qr").count() == 0  # enrolled: no QR code again
        clock.offset += timedelta(seconds=30)  # a new code: each one works once
        pg.fill("#code", "123 456" if totp.at(clock()) != "123456" else "654321")
        pg.click("button:has-text('Continue')")
        assert "That code is not right" in pg.inner_text("[role=alert]")
        pg.fill("#code", totp.at(clock()))
        pg.click("button:has-text('Continue')")
        pg.wait_for_url("**/patients/new")
    finally:
        context.close()
    assert all(u.startswith(clinic.base_url) for u in requests), requests


def test_the_right_password_is_refused_while_locked(chromium: Any, sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    clock = Clock()
    clinic.rt.clock = clock
    account = add_account(clinic, "clinician")
    context, pg, _ = new_page(chromium, clinic)
    try:
        pg.goto("/queue")
        for _ in range(10):
            fill_login(pg, account.email, "not my password")
            pg.wait_for_selector("[role=alert]")
            clock.offset += timedelta(seconds=61)  # past the back-off, inside the window
        assert "locked" in pg.inner_text("[role=alert]")
        fill_login(pg, account.email, account.password)
        pg.wait_for_selector("[role=alert]")
        message = pg.inner_text("[role=alert]")
        assert "locked after too many failed sign-ins" in message and "administrator" in message
        assert "/login" in pg.url
        clinic.cli.run("users", "unlock", str(account.id))
        fill_login(pg, account.email, account.password)
        pg.wait_for_url("**/queue")
    finally:
        context.close()


def test_an_idle_session_is_signed_out(chromium: Any, sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    clock = Clock()
    clinic.rt.clock = clock
    account = add_account(clinic, "clinician")
    context, pg, _ = new_page(chromium, clinic)
    try:
        pg.goto("/queue")
        fill_login(pg, account.email, account.password)
        pg.wait_for_url("**/queue")
        clock.offset += timedelta(minutes=14)
        pg.reload()
        assert pg.url.endswith("/queue")
        clock.offset += timedelta(minutes=16)  # 16 minutes without a request
        pg.reload()
        assert "/login" in pg.url
        assert "signed out after a period without activity" in pg.inner_text("[role=status]")
    finally:
        context.close()


def test_the_api_docs_page_loads_nothing_from_elsewhere(
    chromium: Any, sqlite_clinic: Clinic
) -> None:
    account = add_account(sqlite_clinic, "clinician")
    context, pg, requests = new_page(chromium, sqlite_clinic)
    try:
        pg.goto("/api/docs")
        fill_login(pg, account.email, account.password)
        pg.wait_for_url("**/api/docs")
        assert pg.locator("#operations tr").count() > 20
        scripts = pg.eval_on_selector_all("script", "els => els.map(e => e.src)")
        assert scripts == [f"{sqlite_clinic.base_url}/static/dashboard.js"]
    finally:
        context.close()
    assert requests and all(u.startswith(sqlite_clinic.base_url) for u in requests), requests
