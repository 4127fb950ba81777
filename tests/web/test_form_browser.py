"""The questionnaire link, opened on a phone: Debian's Chromium (headless, Playwright) at 390x844
against the real app. A PHQ-9 goes out through `checkin tick` and the Twilio emulator; the link
is taken out of the SMS the patient received; the form is answered partly by tapping and partly
with the keyboard alone, sent, and the confirmation shown. The form runs no script, under the
app's strict Content-Security-Policy (a violation would be a console error: the test fails).

The phone screenshot goes to test-artifacts/screenshots/form-phone.png; with
CHECKIN_UPDATE_DOCS_SCREENSHOTS=1 also to docs/screenshots/ (docs/forms.md shows it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clinic import Clinic
from tests.integration.test_replies import send_checkin
from tests.web.test_browser import no_sideways_scroll, shot

pytestmark = pytest.mark.browser

PHONE_VIEWPORT = {"width": 390, "height": 844}
PATIENT = "+12125550188"
MIN_TAP = 44  # px: WCAG 2.5.5 / Apple HIG


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:
    """A phone-sized page that fails the test on any dialog, page error or console error."""
    context = chromium.new_context(
        viewport=PHONE_VIEWPORT, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(15_000)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    yield pg
    context.close()
    assert problems == []


def test_a_patient_answers_a_phq9_from_the_sms_link_on_a_phone(
    phone: Any, sqlite_clinic: Clinic, screenshots: Path
) -> None:
    clinic = sqlite_clinic
    pid = clinic.patient(PATIENT, "--send-window", "00:00-24:00")
    send_checkin(clinic, pid, "phq9")
    [sms] = clinic.sms_to(PATIENT)
    assert sms.startswith("Riverside Pain & Wellness: your check-in is ready, 2 min: "), sms
    match = re.search(r"https?://\S+/q/[A-Za-z0-9_-]{22}$", sms)
    assert match, sms

    response = phone.goto(match.group(0))
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert phone.get_attribute("html", "lang") == "en"
    assert phone.locator("script").count() == 0
    no_sideways_scroll(phone)
    # Every item on one page, in fieldsets whose legends carry the published wording.
    legends = phone.locator("fieldset legend").all_inner_texts()
    assert len(legends) == 9
    assert legends[0] == "1. Little interest or pleasure in doing things"
    assert legends[8].startswith("9. Thoughts that you would be better off dead")
    assert phone.get_by_label("Several days").count() == 9  # every radio has its label
    for box in (phone.locator("label.opt").nth(i).bounding_box() for i in (0, 17, 35)):
        assert box is not None and box["height"] >= MIN_TAP and box["width"] >= MIN_TAP

    # Items 1-5 by tapping the label (the whole row is the target).
    for n, value in zip(range(1, 6), [2, 1, 3, 1, 0], strict=True):
        phone.locator(f"label[for='phq9_{n}-{value}']").tap()
    # Items 6-9 with the keyboard alone: Tab into each group, arrows choose, Space confirms.
    phone.focus("#phq9_5-0")
    for _ in range(4):
        phone.keyboard.press("Tab")  # to the next question's group
        phone.keyboard.press("ArrowRight")  # "Several days"
    phone.keyboard.press("ArrowLeft")  # item 9 back to "Not at all"
    assert phone.is_checked("#phq9_9-0")
    phone.evaluate("window.scrollTo(0, 0)")  # the first screen, as the patient opens it
    shot(phone, screenshots, "form-phone", docs=True)
    phone.keyboard.press("Tab")  # to Send
    assert phone.evaluate("document.activeElement.textContent") == "Send"
    phone.keyboard.press("Enter")

    phone.wait_for_selector("h1:has-text('Thank you')")
    assert "We received your answers" in phone.inner_text("main")
    shot(phone, screenshots, "form-phone-received")
    rows = clinic.cli.json("responses", "list", "--patient", str(pid))
    assert {r["item"]: r["value"] for r in rows} == {
        "phq9_1": 2,
        "phq9_2": 1,
        "phq9_3": 3,
        "phq9_4": 1,
        "phq9_5": 0,
        "phq9_6": 1,
        "phq9_7": 1,
        "phq9_8": 1,
        "phq9_9": 0,
    }
    assert clinic.cli.json("followups", "list", "--patient", str(pid)) == []

    # Back and send again: already received, nothing changes.
    phone.go_back()
    phone.reload()
    assert "Already received" in phone.inner_text("h1")
