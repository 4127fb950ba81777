"""The on-call page's link, opened on a phone: Debian's Chromium (headless, Playwright) at
390x844 against the real app. A crisis text goes through the real pipeline, the link is taken
out of the page SMS the on-call received, and the follow-up is acknowledged and resolved there.

The phone screenshot goes to test-artifacts/screenshots/followup-phone.png; with
CHECKIN_UPDATE_DOCS_SCREENSHOTS=1 also to docs/screenshots/ (the README shows it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from tests.integration.clinic import ONCALL_PHONE, Clinic, open_clinic
from tests.web.conftest import Account, add_account
from tests.web.test_browser import no_sideways_scroll, shot
from worker.store.db import session_scope
from worker.store.models import FollowUp, Response

pytestmark = pytest.mark.browser

PHONE_VIEWPORT = {"width": 390, "height": 844}
PATIENT = "+12125550143"
STRANGER = "+13105550177"
TEXT = "I want to end my life. I can't do this <anymore> & nobody knows"
MIN_TAP = 44  # px: the smallest comfortable touch target (Apple HIG, WCAG 2.5.5)


@pytest.fixture
def phone(chromium: Any, sqlite_clinic: Clinic) -> Iterator[Any]:
    """A phone-sized browser context that fails the test on any dialog, page error or
    console error."""
    context = chromium.new_context(
        viewport=PHONE_VIEWPORT, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(15_000)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on(
        "console",
        lambda m: (
            problems.append(f"console: {m.text}")
            if m.type == "error" and "status of 4" not in m.text
            else None
        ),
    )
    yield pg
    context.close()
    assert problems == []


def page_link(clinic: Clinic) -> str:
    """The link in the last page SMS, exactly as the on-call's phone shows it."""
    body = clinic.sms_to(ONCALL_PHONE)[-1]
    assert body.startswith("Urgent follow-up waiting: "), body
    match = re.search(r"https?://\S+", body)
    assert match, body
    return match.group(0)


def sign_in_at(pg: Any, link: str, account: Account) -> None:
    pg.goto(link)
    assert "/login?next=" in pg.url  # nothing shown before signing in
    pg.fill("#email", account.email)
    pg.fill("#password", account.password)
    pg.click("button:has-text('Sign in')")


def in_first_screen(pg: Any, selector: str) -> None:
    box = pg.locator(selector).first.bounding_box()
    assert box is not None, selector
    assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE_VIEWPORT["height"], (selector, box)
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE_VIEWPORT["width"], (selector, box)


def big_enough(pg: Any, selector: str) -> None:
    box = pg.locator(selector).first.bounding_box()
    assert box is not None and box["height"] >= MIN_TAP, (selector, box)


def test_the_page_link_opens_the_follow_up_on_a_phone(
    phone: Any, sqlite_clinic: Clinic, screenshots: Path
) -> None:
    clinic = sqlite_clinic
    clinic.patient(PATIENT)
    clinic.text(PATIENT, TEXT)
    link = page_link(clinic)
    with session_scope(clinic.rt.sessions) as session:
        (item,) = session.scalars(select(FollowUp)).all()
        fid = item.id
    assert link == f"{clinic.base_url}/followups/{fid}"

    sign_in_at(phone, link, add_account(clinic, "clinician"))
    phone.wait_for_url(f"**/followups/{fid}")
    assert phone.inner_text("h1") == "Pat Doe"
    call = phone.locator(f'a[href="tel:{PATIENT}"]')
    assert call.count() == 1 and PATIENT in call.inner_text()
    assert phone.inner_text(".said blockquote") == TEXT  # verbatim: the markup is text
    assert re.search(r"\d+(s| min) ago", phone.inner_text(".said figcaption"))
    assert "Crisis language in a reply" in phone.inner_text(".fup-head")

    # One screen: who, a number to call, what they wrote and the button to act.
    no_sideways_scroll(phone)
    for selector in ("h1", "a.call", ".said blockquote", "button:has-text('Acknowledge')"):
        in_first_screen(phone, selector)
    for selector in ("a.call", "button:has-text('Acknowledge')", "button:has-text('Resolve')"):
        big_enough(phone, selector)
    shot(phone, screenshots, "followup-phone", docs=True)

    phone.get_by_role("button", name="Acknowledge").click()
    phone.wait_for_url("**done=acknowledged**")
    assert "Follow-up acknowledged." in phone.inner_text(".notice")
    assert "Acknowledged by Dr. Rivera" in phone.inner_text(".status-line")
    assert phone.get_by_role("button", name="Acknowledge").count() == 0

    # Resolving an urgent item needs a note: the browser asks before the server refuses.
    phone.get_by_role("button", name="Resolve").click()
    assert phone.locator("textarea:invalid").count() == 1
    phone.fill("#note", "Called Pat; safety plan reviewed; seen tomorrow 9:00.")
    phone.get_by_role("button", name="Resolve").click()
    phone.wait_for_url("**done=resolved**")
    assert "Resolved by Dr. Rivera" in phone.inner_text(".status-line")
    assert "safety plan reviewed" in phone.inner_text(".note")
    no_sideways_scroll(phone)
    with session_scope(clinic.rt.sessions) as session:
        done = session.get(FollowUp, fid)
        assert done is not None
        assert (done.status, done.acknowledged_by, done.resolved_by) == (
            "resolved",
            "Dr. Rivera",
            "Dr. Rivera",
        )


def test_an_unknown_sender_can_be_called_back_from_the_page(
    phone: Any, sqlite_clinic: Clinic, screenshots: Path
) -> None:
    clinic = sqlite_clinic
    clinic.text(STRANGER, "i want to kill myself")
    link = page_link(clinic)
    sign_in_at(phone, link, add_account(clinic, "clinician"))
    phone.wait_for_url("**/followups/*")
    assert phone.inner_text("h1") == "Unknown sender"
    call = phone.locator(f'a[href="tel:{STRANGER}"]')
    assert call.count() == 1 and STRANGER in call.inner_text()
    in_first_screen(phone, "a.call")
    assert phone.inner_text(".said blockquote") == "i want to kill myself"
    no_sideways_scroll(phone)
    shot(phone, screenshots, "followup-unknown-sender-phone")


def test_the_front_desk_cannot_open_a_clinical_follow_up(phone: Any, sqlite_clinic: Clinic) -> None:
    clinic = sqlite_clinic
    clinic.patient(PATIENT)
    clinic.text(PATIENT, TEXT)
    link = page_link(clinic)
    sign_in_at(phone, link, add_account(clinic, "frontdesk"))
    phone.wait_for_url(link)
    assert phone.inner_text("h1") == "Not allowed"
    body = phone.inner_text("body")
    assert "end my life" not in body and "Pat Doe" not in body and PATIENT not in body
    assert phone.locator("a[href^='tel:']").count() == 0
    with session_scope(clinic.rt.sessions) as session:
        (item,) = session.scalars(select(FollowUp)).all()
        assert item.status == "open"


def test_scores_pages_and_escalation_fit_the_phone_width(
    phone: Any, sqlite_clinic: Clinic, screenshots: Path
) -> None:
    clinic = sqlite_clinic
    pid = clinic.patient(PATIENT)
    now = datetime.now(UTC)
    with session_scope(clinic.rt.sessions) as session:
        for days, mood, pain in ((4, 6, 5), (3, 5, 6), (2, 4, 7), (1, 2, 9)):
            at = now - timedelta(days=days)
            for item, value in (("mood", mood), ("pain", pain)):
                session.add(
                    Response(
                        patient_id=pid,
                        instrument="mood_pain",
                        item=item,
                        value=value,
                        answered_at=at,
                    )
                )
    clinic.text(PATIENT, "4 8")  # no check-in open: a routine item, not crisis
    clinic.text(PATIENT, TEXT)
    link = page_link(clinic)
    fid = int(link.rsplit("/", 1)[1])
    with session_scope(clinic.rt.sessions) as session:
        item = session.get(FollowUp, fid)
        assert item is not None
        item.detail = {
            **item.detail,
            "escalation": [
                {"at": now.isoformat(), "step": "oncall", "page": 1, "channels": ["sms", "email"],
                 "message_ids": [1, 2]},
                {"at": (now + timedelta(minutes=75)).isoformat(), "step": "backup", "page": 6,
                 "channels": ["sms"], "message_ids": [3]},
            ],
        }  # fmt: skip
    sign_in_at(phone, link, add_account(clinic, "clinician"))
    phone.wait_for_url(f"**/followups/{fid}")
    scores = phone.inner_text("#scores")
    assert "Mood (0-10, 10 best)" in scores and "6 → 5 → 4 → 2" in scores
    assert phone.locator("#scores .trend.worse").count() == 2  # mood down, pain up
    assert "Backup paged, page 6" in phone.inner_text("#pages")
    no_sideways_scroll(phone)
    shot(phone, screenshots, "followup-phone-full", full_page=True)


@pytest.fixture
def mfa_clinic(sqlite_url: str, twilio_emulator: Any, smtp_server: object) -> Iterator[Clinic]:
    c = open_clinic(sqlite_url, twilio_emulator, smtp_server, CHECKIN_REQUIRE_2FA="1")
    yield c
    c.close()


def test_the_page_link_survives_the_second_factor(chromium: Any, mfa_clinic: Clinic) -> None:
    """At 2 a.m. the on-call opens the link on a phone, signs in with password and code (here
    enrolling the second factor on the way) and lands on the follow-up, ready to acknowledge."""
    clinic = mfa_clinic
    clinic.patient(PATIENT)
    clinic.text(PATIENT, TEXT)
    link = page_link(clinic)
    with session_scope(clinic.rt.sessions) as session:
        (item,) = session.scalars(select(FollowUp)).all()
        fid = item.id
    context = chromium.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    context.set_default_timeout(15_000)
    try:
        pg = context.new_page()
        sign_in_at(pg, link, add_account(clinic, "clinician"))
        pg.wait_for_url(f"**/login/2fa?next=%2Ffollowups%2F{fid}")
        secret = pg.inner_text("#totp-secret").strip()
        pg.fill("#code", pyotp.TOTP(secret).now())
        pg.click("button:has-text('Continue')")
        assert pg.locator("#recovery-codes li").count() == 10
        pg.click("#continue")
        pg.wait_for_url(f"**/followups/{fid}")
        assert pg.inner_text("h1") == "Pat Doe"
        pg.get_by_role("button", name="Acknowledge").click()
        pg.wait_for_url("**done=acknowledged**")
    finally:
        context.close()
    with session_scope(clinic.rt.sessions) as session:
        acked = session.get(FollowUp, fid)
        assert acked is not None and acked.status == "acknowledged"
