"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against the
real app (uvicorn), the Twilio emulator and an SMTP server on one database.

Screenshots of the main pages go to test-artifacts/screenshots/. With
CHECKIN_UPDATE_DOCS_SCREENSHOTS=1 the README's set in docs/screenshots/ is refreshed too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.integration.clinic import Clinic
from tests.web.conftest import ROOT, Account, add_account
from worker.services.demo.clinic import seed_demo
from worker.store.db import session_scope
from worker.store.models import Appointment, FollowUp

pytestmark = pytest.mark.browser

PHONE = "+12125550143"
DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 1024, "height": 768}
DOCS = ROOT / "docs" / "screenshots"


@pytest.fixture
def page(chromium: Any, sqlite_clinic: Clinic) -> Iterator[Any]:
    """A fresh browser context (its own cookies) that fails the test on any dialog or page
    error: a patient's `<script>` must never run."""
    context = chromium.new_context(viewport=DESKTOP, base_url=sqlite_clinic.base_url)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def console(message: Any) -> None:
        # A refused form answers 422 on purpose (the page shows why); Chromium logs that.
        if message.type == "error" and "status of 422" not in message.text:
            problems.append(f"console: {message.text}")

    pg.on("console", console)
    yield pg
    context.close()
    assert problems == []


def shot(pg: Any, screenshots: Path, name: str, *, docs: bool = False, **kw: Any) -> Path:
    path = screenshots / f"{name}.png"
    pg.screenshot(path=str(path), **kw)
    assert path.stat().st_size > 5_000  # something was drawn
    if docs and os.environ.get("CHECKIN_UPDATE_DOCS_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / path.name)
    return path


def sign_in(pg: Any, account: Account | dict[str, str], start: str = "/queue") -> None:
    email = account.email if isinstance(account, Account) else account["email"]
    password = account.password if isinstance(account, Account) else account["password"]
    pg.goto(start)
    assert "/login" in pg.url  # nothing shown before signing in
    pg.fill("#email", email)
    pg.fill("#password", password)
    pg.click("button:has-text('Sign in')")
    pg.wait_for_url(f"**{start}")


def no_sideways_scroll(pg: Any) -> None:
    width = pg.evaluate("document.documentElement.scrollWidth")
    assert width <= pg.viewport_size["width"], f"page is {width}px wide"


def test_a_clinician_acknowledges_and_resolves_an_urgent_follow_up(
    page: Any, sqlite_clinic: Clinic, screenshots: Path
) -> None:
    clinic = sqlite_clinic
    pid = clinic.patient(PHONE)
    clinic.text(PHONE, "Thanks, 5 4")  # a routine item, older than the crisis
    clinic.text(PHONE, "I want to end my life")
    doc = add_account(clinic, "clinician")
    sign_in(page, doc)

    first = page.locator(".fu").first
    assert "sev-urgent" in (first.get_attribute("class") or "")
    assert "Crisis language in a reply" in first.inner_text()
    assert "Pat Doe" in first.inner_text() and "SLA to acknowledge 15 min" in first.inner_text()
    shot(page, screenshots, "queue")

    # Acknowledge in place: the card changes, the page does not reload.
    page.evaluate("window.__noReload = 1")
    first.get_by_role("button", name="Acknowledge").click()
    card = page.locator(".fu.sev-urgent")
    card.get_by_text("acknowledged by Dr. Rivera").wait_for()
    assert page.evaluate("window.__noReload") == 1
    assert card.get_by_role("button", name="Acknowledge").count() == 0

    # Resolve: the note is required for an urgent item, in the browser and on the server.
    card.locator("summary").click()
    card.get_by_role("button", name="Resolve").click()
    assert card.locator("textarea:invalid").count() == 1
    card.locator("textarea").fill("Called the patient; safety plan reviewed; seen tomorrow.")
    card.get_by_role("button", name="Resolve").click()
    page.locator(".fu.status-resolved").wait_for()
    assert "Note: Called the patient" in page.locator(".fu.status-resolved").inner_text()
    with session_scope(clinic.rt.sessions) as session:
        item = session.scalars(
            select(FollowUp).where(FollowUp.patient_id == pid, FollowUp.severity == "urgent")
        ).one()
        assert (item.status, item.acknowledged_by, item.resolved_by) == (
            "resolved",
            "Dr. Rivera",
            "Dr. Rivera",
        )
    page.goto("/queue?status=resolved")
    assert "safety plan reviewed" in page.inner_text("main")


def test_the_demo_clinic_shows_a_chart_with_infusions_marked(
    page: Any, sqlite_clinic: Clinic, screenshots: Path
) -> None:
    clinic = sqlite_clinic
    demo = seed_demo(clinic.rt, datetime.now(UTC))
    alex = demo["patients"][0]
    sign_in(page, demo["sign_in"])
    assert page.locator(".fu").count() >= 4
    assert "sev-urgent" in (page.locator(".fu").first.get_attribute("class") or "")

    page.get_by_role("link", name="Patients", exact=True).click()
    page.get_by_role("link", name=alex["name"]).click()
    page.wait_for_url(f"**/patients/{alex['id']}")
    chart = page.locator("svg.chart")
    chart.wait_for()
    points = {
        series: len((page.get_attribute(f"polyline.series-{series}", "points") or "").split())
        for series in ("mood", "pain", "sleep", "phq9")
    }
    assert points["mood"] >= 25 and points["pain"] >= 25 and points["sleep"] >= 25, points
    assert points["phq9"] == 5, points
    assert page.locator("g.marker-infusion").count() >= 6  # the past series and the next ones
    assert "Show more" in page.inner_text("#conversation")
    page.locator("#chart").screenshot(path=str(screenshots / "chart.png"))
    if os.environ.get("CHECKIN_UPDATE_DOCS_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshots / "chart.png", DOCS / "chart.png")
    shot(page, screenshots, "patient-full", full_page=True)

    # The same pages on a tablet: nothing runs off the side.
    page.set_viewport_size(TABLET)
    for path, name in (("/queue", "queue-tablet"), (f"/patients/{alex['id']}", "patient-tablet")):
        page.goto(path)
        no_sideways_scroll(page)
        shot(page, screenshots, name, docs=True)
    page.goto("/ops")
    no_sideways_scroll(page)
    assert "Outbox by status" in page.inner_text("main")
    shot(page, screenshots, "ops", docs=True)


def test_booking_an_appointment_shows_its_reminders_in_the_preview(
    page: Any, sqlite_clinic: Clinic, screenshots: Path
) -> None:
    clinic = sqlite_clinic
    pid = clinic.patient(PHONE)
    sign_in(page, add_account(clinic, "frontdesk"), start=f"/patients/{pid}")
    day = (datetime.now(UTC) + timedelta(days=4)).astimezone(ZoneInfo("America/New_York")).date()
    page.select_option("#book-kind", "infusion")
    page.fill("#book-at", f"{day.isoformat()}T14:30")
    page.fill("#book-location", "Suite 200")
    page.get_by_role("button", name="Book").click()
    page.wait_for_url("**done=appointment_booked**")
    assert "Appointment booked" in page.inner_text(".notice")
    assert "Infusion" in page.inner_text("#appointments")
    planned = page.inner_text("#planned")
    assert "reminder_infusion" in planned and "infusion_prep" in planned

    page.get_by_role("link", name="Full preview").click()
    rows = page.locator("#preview tbody tr[data-kind=reminder]")
    assert rows.count() == 4  # 72 h, 24 h, 2 h before and the evening before
    times = rows.locator("td:first-child").all_inner_texts()
    assert times == sorted(times) and times[-1].startswith(f"{day.isoformat()}T12:30")
    shot(page, screenshots, "preview", docs=True)
    with session_scope(clinic.rt.sessions) as session:
        (appt,) = session.scalars(select(Appointment)).all()
        assert appt.kind == "infusion" and appt.location == "Suite 200"

    # A bad date comes back with the command line's message and books nothing more.
    page.goto(f"/patients/{pid}")
    page.evaluate("document.querySelector('#book-at').type = 'text'")
    page.fill("#book-at", "next tuesday")
    page.get_by_role("button", name="Book").click()
    assert "the appointment time must be YYYY-MM-DDTHH:MM" in page.inner_text(
        "#appointments .error"
    )
    with session_scope(clinic.rt.sessions) as session:
        assert len(session.scalars(select(Appointment)).all()) == 1


def test_a_reply_of_script_is_shown_as_text(
    page: Any, sqlite_clinic: Clinic, screenshots: Path
) -> None:
    clinic = sqlite_clinic
    pid = clinic.patient(PHONE)
    clinic.text(PHONE, "<script>alert('pwned')</script>")
    clinic.text(PHONE, '<img src=x onerror="alert(2)">')
    sign_in(page, add_account(clinic, "clinician"), start=f"/patients/{pid}")
    convo = page.inner_text("#conversation")
    assert "<script>alert('pwned')</script>" in convo
    assert '<img src=x onerror="alert(2)">' in convo
    assert page.locator("#conversation img").count() == 0
    page.goto("/queue")
    assert page.locator(".fu").count() >= 1  # the unreadable replies wait for a person
    shot(page, screenshots, "escaped-reply")
