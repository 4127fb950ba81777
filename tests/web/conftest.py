"""Fixtures for the dashboard tests: a running clinic (real uvicorn app, Twilio emulator, SMTP),
accounts made through the real service, an HTTP client that signs in through the login form,
and Debian's Chromium driven by Playwright for the browser tests."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from checkin_emulator import TwilioEmulator

from tests.integration import conftest as integration
from tests.integration.clinic import Clinic, open_clinic
from worker.services.records.accounts import create_user
from worker.store.db import session_scope

# The emulator and SMTP fixtures of the integration tests, shared with these.
twilio_emulator = integration.twilio_emulator
smtp_server = integration.smtp_server
smtp_server_factory = integration.smtp_server_factory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Debian's Chromium through Playwright")


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    email: str
    role: str
    password: str = PASSWORD


def add_account(clinic: Clinic, role: str, name: str | None = None) -> Account:
    name = name or {"clinician": "Dr. Rivera", "frontdesk": "Jo Desk", "admin": "Ada Admin"}[role]
    email = f"{role}-{re.sub(r'[^a-z]', '', name.lower())}@clinic.example"
    with session_scope(clinic.rt.sessions) as session:
        user = create_user(
            session, name=name, email=email, role=role, password=PASSWORD, now=datetime.now(UTC)
        )
        return Account(user.id, name, email, role)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


class Browser:
    """An HTTP client with a cookie jar, signed in through the real login form."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def csrf(self, path: str = "/login") -> str:
        return csrf_of(self.get(path).text)

    def sign_in(self, account: Account) -> httpx.Response:
        token = self.csrf("/login")
        r = self.http.post(
            "/login",
            data={
                "csrf": token,
                "email": account.email,
                "password": account.password,
                "next": "/queue",
            },
        )
        assert r.status_code == 303, r.text
        return r

    def post(
        self, path: str, data: dict[str, str], *, token_from: str = "/queue", **kw: Any
    ) -> httpx.Response:
        """A form POST carrying the CSRF token of the current session."""
        return self.http.post(path, data={"csrf": self.csrf(token_from), **data}, **kw)


@pytest.fixture
def clinic(db_url: str, twilio_emulator: TwilioEmulator, smtp_server: object) -> Iterator[Clinic]:
    c = open_clinic(db_url, twilio_emulator, smtp_server)
    yield c
    c.close()


@pytest.fixture
def sqlite_clinic(
    sqlite_url: str, twilio_emulator: TwilioEmulator, smtp_server: object
) -> Iterator[Clinic]:
    c = open_clinic(sqlite_url, twilio_emulator, smtp_server)
    yield c
    c.close()


@pytest.fixture
def web(clinic: Clinic) -> Iterator[Browser]:
    b = Browser(clinic.base_url)
    yield b
    b.close()


def open_browser() -> Any:
    """(playwright, browser). Without /usr/bin/chromium: skipped locally, a failure in CI."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        reason = f"{CHROMIUM} is missing: apt-get install chromium (the browser tests never download one)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        print(f"\nSKIP browser tests: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    return pw, browser


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    pw, browser = open_browser()
    yield browser
    browser.close()
    pw.stop()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
