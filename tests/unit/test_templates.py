"""Every SMS and email template, rendered in both languages with realistic values.

Checks what CLINICAL.md asks of a message body: GSM-7 and one segment for English check-ins and
reminders, honest segment counts in Spanish, no drug, diagnosis or instrument name, no request to
reply CANCEL, HTML escaping, and StrictUndefined.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import jinja2
import pytest

from worker.domain.instruments import answer_key, answer_options, get_instrument
from worker.domain.message_rules import FORBIDDEN, LIFELINE
from worker.domain.names import APPOINTMENT_KINDS, LANGUAGES
from worker.domain.sms_text import encoding, is_gsm7, segments, to_gsm_safe
from worker.rendering import RenderedEmail, Renderer, TemplateNotFound, format_when

CLINIC = "Riverside Pain & Wellness"
PHONE = "+1 (555) 010-4477"
LOCATION = "Riverside Medical Plaza, 4500 W Main St, Suite 210"
LINK = "https://checkin.riverside-pain.example/followups/8f3a2c71"
# A questionnaire link as services/form_links.py builds it: the public URL, /q/, 22 characters.
FORM_URL = "https://checkin.riverside-pain.example/q/Xb7qP0-rT9sLmN2vW4yZaQ"

CHECKINS = ["checkin_mood", "checkin_pain", "checkin_mood_pain", "checkin_sleep", "checkin_item"]
REMINDERS = [f"reminder_{kind}" for kind in APPOINTMENT_KINDS]
REPLIES = [
    "ack",
    "clarify",
    "stop_confirmation",
    "start_confirmation",
    "help",
    "crisis_reply",
    "oncall_page",
    "possible_risk_reply",
    "passed_on",
]
APPOINTMENT_REPLIES = [
    "appointment_confirm",
    "appointment_reschedule",
    "appointment_cancel_request",
    "appointment_late",
]
# Consent texts and the day after a visit (docs/consent.md, docs/after-visit.md).
CONSENT_AND_VISITS = ["optin_confirmation", "after_visit", "noshow"]
SMS_NAMES = [
    *CHECKINS,
    "checkin_link",
    *REMINDERS,
    "infusion_prep",
    *REPLIES,
    *APPOINTMENT_REPLIES,
    *CONSENT_AND_VISITS,
]
EMAIL_NAMES = [
    *CHECKINS,
    *REMINDERS,
    "infusion_prep",
    "crisis_reply",
    "oncall_page",
    "after_visit",
]
SIMPLE_INSTRUMENT = {
    "checkin_mood": "mood",
    "checkin_pain": "pain",
    "checkin_sleep": "sleep",
    "checkin_mood_pain": "mood_pain",
    "after_visit": "mood",  # the day after a visit: "how are you feeling today, 0-10?"
}
CONVERSATIONAL = ["phq2", "phq9", "gad2", "gad7", "peg"]

# The forbidden-word list and the Lifeline exception: worker/domain/message_rules.py.


def _dates() -> Iterator[datetime]:
    start = datetime(2026, 1, 1)
    for day in range(365):
        for hour in (9, 12, 23):
            yield start + timedelta(days=day, hours=hour, minutes=30)


def _longest_when(language: str, weekday: int | None = None) -> str:
    return max(
        (format_when(d, language) for d in _dates() if weekday is None or d.weekday() == weekday),
        key=len,
    )


# The longest date string each language produces.
WHEN = {"en": _longest_when("en"), "es": _longest_when("es")}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def common(language: str, **extra: Any) -> dict[str, Any]:
    return {"clinic_name": CLINIC, "clinic_phone": PHONE, "language": language, **extra}


def item_context(name: str, language: str, index: int, first: bool) -> dict[str, Any]:
    instrument = get_instrument(name, language)
    item = instrument.items[index]
    return common(
        language,
        item_text=item.text,
        item_number=index + 1,
        item_count=len(instrument.items),
        answer_key=answer_key(instrument, item),
        stem=instrument.stem,
        first=first,
    )


def email_items(name: str, language: str) -> list[dict[str, Any]]:
    instrument = get_instrument(name, language)
    return [
        {
            "key": item.key,
            "text": item.text,
            "minimum": item.minimum,
            "maximum": item.maximum,
            "links": [
                {"value": v, "label": label, "url": f"{LINK}/{item.key}/{v}?sig=Zm9v"}
                for v, label in answer_options(instrument, item)
            ],
        }
        for item in instrument.items
    ]


def sms_context(name: str, language: str, when: str | None = None) -> dict[str, Any]:
    """The longest realistic context for template `name` (PHQ-9 item 9 for questionnaire items)."""
    if name == "checkin_item":
        return item_context("phq9", language, 8, first=False)
    extra: dict[str, Any] = {}
    if name == "checkin_link":
        extra = {"form_url": FORM_URL}
    if name in REMINDERS or name in ("infusion_prep", "appointment_confirm"):
        extra = {"when": when or WHEN[language], "location": LOCATION}
    elif name == "clarify":
        extra = {"low": 0, "high": 10}
    elif name == "oncall_page":
        extra = {"link": LINK}
    return common(language, **extra)


def email_context(name: str, language: str) -> dict[str, Any]:
    if name == "checkin_item":
        instrument = get_instrument("phq9", language)
        return common(
            language,
            items=email_items("phq9", language),
            stem=instrument.stem,
            form_url=FORM_URL,
        )
    if name in SIMPLE_INSTRUMENT:
        return common(
            language, items=email_items(SIMPLE_INSTRUMENT[name], language), form_url=FORM_URL
        )
    return sms_context(name, language)


def body_words(name: str, text: str) -> str:
    if name not in ("crisis_reply", "help"):
        return text
    return text.replace(LIFELINE, "").replace(LIFELINE.replace("&", "&amp;"), "")


@pytest.mark.parametrize(
    "text",
    [
        "your ketamine infusion",
        "Spravato session",
        "PHQ-9 score",
        "GAD-7",
        "your pain score",
        "depression check",
        "sesión de ketamina",
        "su depresión",
        "suicide",
    ],
)
def test_the_forbidden_word_filter_catches(text: str) -> None:
    assert FORBIDDEN.search(text)


def test_only_the_lifeline_name_is_allowed_and_only_where_it_belongs() -> None:
    assert not FORBIDDEN.search(body_words("crisis_reply", f"call 988 ({LIFELINE})"))
    assert FORBIDDEN.search(body_words("ack", f"call 988 ({LIFELINE})"))


# --- presence --------------------------------------------------------------------------------


def test_every_required_template_exists(renderer: Renderer) -> None:
    assert set(SMS_NAMES) <= set(renderer.names("sms"))
    assert set(EMAIL_NAMES) <= set(renderer.names("email"))
    assert not [n for n in renderer.names("sms") + renderer.names("email") if n.startswith("_")]


def test_names_rejects_an_unknown_kind(renderer: Renderer) -> None:
    with pytest.raises(ValueError):
        renderer.names("fax")


# --- SMS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", SMS_NAMES)
def test_every_sms_renders_without_forbidden_words(
    renderer: Renderer, name: str, language: str
) -> None:
    body = renderer.sms(name, language, sms_context(name, language))
    assert body == body.strip() and body
    assert "{{" not in body and "{%" not in body
    assert not FORBIDDEN.search(body_words(name, body)), body
    if language == "en":
        assert is_gsm7(body), body


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", CONVERSATIONAL)
def test_every_questionnaire_item_renders_and_never_names_the_instrument(
    renderer: Renderer, name: str, language: str
) -> None:
    instrument = get_instrument(name, language)
    # Only the first item of a questionnaire carries the stem.
    for index, first in [(0, True)] + [(i, False) for i in range(len(instrument.items))]:
        body = renderer.sms("checkin_item", language, item_context(name, language, index, first))
        assert instrument.items[index].text in body
        assert f"{index + 1}/{len(instrument.items)} " in body
        assert not FORBIDDEN.search(body), body
        assert not re.search(r"\b(PEG|PHQ|GAD)\b", body)
        if instrument.stem:
            assert (instrument.stem in body) is first
        if language == "en":
            assert is_gsm7(body), body
            assert segments(body) <= 2, body


# English one-segment budget: these fit 160 characters with the long clinic name, the long
# location and the longest date.
ONE_SEGMENT_EN = [
    "checkin_mood",
    "checkin_pain",
    "checkin_mood_pain",
    "checkin_sleep",
    "checkin_item",  # PHQ-9 item 9, not the first item
    "checkin_link",
    *REMINDERS,
    "infusion_prep",
    "ack",
    "clarify",
    "stop_confirmation",
    "start_confirmation",
    "help",
    "possible_risk_reply",
    "passed_on",
    "crisis_reply",
    "oncall_page",
    *APPOINTMENT_REPLIES,
    *CONSENT_AND_VISITS,
]


@pytest.mark.parametrize("name", ONE_SEGMENT_EN)
def test_english_prompts_and_reminders_fit_one_segment(renderer: Renderer, name: str) -> None:
    body = renderer.sms(name, "en", sms_context(name, "en"))
    assert encoding(body) == "GSM-7"
    assert len(body) <= 160, (len(body), body)
    assert segments(body) == 1


# Published PHQ-9 items 6-8 are too long for one segment with the reply key (item 8 alone is
# 163 characters); every other non-first item fits. The first item carries the stem: 2 segments.
TWO_SEGMENT_ITEMS_EN = {"phq9_6", "phq9_7", "phq9_8"}


@pytest.mark.parametrize("name", CONVERSATIONAL)
def test_english_questionnaire_items_fit_one_segment_except_the_long_published_ones(
    renderer: Renderer, name: str
) -> None:
    instrument = get_instrument(name, "en")
    for index, item in enumerate(instrument.items):
        body = renderer.sms("checkin_item", "en", item_context(name, "en", index, first=False))
        assert segments(body) == (2 if item.key in TWO_SEGMENT_ITEMS_EN else 1), body
    first = renderer.sms("checkin_item", "en", item_context(name, "en", 0, first=True))
    assert segments(first) == 2, first


# Every date a message can carry: each weekday in each month, at the widest time of day.
def _every_weekday_and_month() -> Iterator[datetime]:
    start = datetime(2026, 1, 1, 12, 30)
    for day in range(365):
        yield start + timedelta(days=day)


ONE_SEGMENT_BY_DATE = [*REMINDERS, "infusion_prep", "appointment_confirm"]
ONE_SEGMENT_ES = [name for name in ONE_SEGMENT_EN if name != "checkin_item"]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ONE_SEGMENT_BY_DATE)
def test_dated_messages_fit_one_gsm7_segment_on_every_weekday_and_month(
    renderer: Renderer, name: str, language: str
) -> None:
    seen: set[tuple[int, int]] = set()
    for local in _every_weekday_and_month():
        when = format_when(local, language)
        body = renderer.sms(name, language, sms_context(name, language, when=when))
        assert when in body
        assert encoding(body) == "GSM-7", body
        assert segments(body) == 1, (len(body), body)
        seen.add((local.weekday(), local.month))
    assert len(seen) == 7 * 12


@pytest.mark.parametrize("name", ONE_SEGMENT_ES)
def test_spanish_prompts_reminders_and_replies_fit_one_gsm7_segment(
    renderer: Renderer, name: str
) -> None:
    # The fixed Spanish wording avoids á, í, ó, ú (é, ñ, ü and ¿ are GSM-7).
    body = renderer.sms(name, "es", sms_context(name, "es"))
    assert encoding(body) == "GSM-7", body
    assert segments(body) == 1, (len(body), body)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_two_number_clarification_fits_one_segment(renderer: Renderer, language: str) -> None:
    body = renderer.sms("clarify", language, common(language, low=0, high=10, numbers=2))
    assert encoding(body) == "GSM-7", body
    assert segments(body) == 1, body


@pytest.mark.parametrize("language", LANGUAGES)
def test_weekday_and_month_names_are_gsm7(language: str) -> None:
    for local in _every_weekday_and_month():
        assert is_gsm7(format_when(local, language)), format_when(local, language)


# Spanish questionnaire items are published with á, í, ó, ú: always UCS-2. Measured maximum
# segments per message (non-first item; first item with the stem).
SPANISH_ITEM_BUDGET = {
    "phq2": (3, 5),
    "phq9": (4, 5),
    "gad2": (3, 5),
    "gad7": (3, 5),
    "peg": (3, 4),
}


@pytest.mark.parametrize("name", CONVERSATIONAL)
def test_spanish_questionnaire_items_are_ucs2_within_the_measured_budget(
    renderer: Renderer, name: str
) -> None:
    later, first = SPANISH_ITEM_BUDGET[name]
    instrument = get_instrument(name, "es")
    for index in range(len(instrument.items)):
        body = renderer.sms("checkin_item", "es", item_context(name, "es", index, first=False))
        assert encoding(body) == "UCS-2"
        assert segments(body) <= later, body
    opening = renderer.sms("checkin_item", "es", item_context(name, "es", 0, first=True))
    assert segments(opening) <= first, opening


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", [*REMINDERS, "infusion_prep"])
def test_no_reminder_asks_for_cancel(renderer: Renderer, name: str, language: str) -> None:
    sms = renderer.sms(name, language, sms_context(name, language))
    email = renderer.email(name, language, email_context(name, language))
    for body in (sms, email.subject, email.text, email.html):
        assert not re.search(r"cancel", body, re.IGNORECASE), body


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", REMINDERS)
def test_reminders_say_when_where_and_how_to_reply(
    renderer: Renderer, name: str, language: str
) -> None:
    body = renderer.sms(name, language, sms_context(name, language))
    assert WHEN[language] in body
    assert LOCATION in body
    assert CLINIC in body
    expected = {
        "en": "Reply C to confirm, R to reschedule.",
        "es": "Responda C para confirmar o R para cambiarla.",
    }
    assert expected[language] in body


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_reminder_without_location_reads_well(renderer: Renderer, language: str) -> None:
    context = dict(sms_context("reminder_therapy", language), location=None)
    body = renderer.sms("reminder_therapy", language, context)
    assert " at ." not in body and " en ." not in body and "None" not in body
    assert f"{WHEN[language]}." in body


@pytest.mark.parametrize("language", LANGUAGES)
def test_infusion_prep_says_what_to_do_and_not_why(renderer: Renderer, language: str) -> None:
    body = renderer.sms("infusion_prep", language, sms_context("infusion_prep", language))
    if language == "en":
        for phrase in ("ride home", "do not drive until the next day", "eating instructions"):
            assert phrase in body
        assert not re.search(r"\b(because|so that|sedat\w*|dissociat\w*|drows\w*)\b", body, re.I)
    else:
        for phrase in ("lleve a casa", "no maneje", "indicaciones para comer"):
            assert phrase in body
        assert not re.search(r"\b(porque|sedaci\w*|disociaci\w*)\b", body, re.I)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_simple_checkins_ask_the_instrument_question(renderer: Renderer, language: str) -> None:
    for name in ("checkin_mood", "checkin_pain", "checkin_sleep"):
        item = get_instrument(SIMPLE_INSTRUMENT[name], language).items[0]
        body = renderer.sms(name, language, sms_context(name, language))
        assert item.text in body
        assert f"({item.low_anchor})" in body and f"({item.high_anchor})" in body


def test_mood_pain_asks_for_two_numbers(renderer: Renderer) -> None:
    body = renderer.sms("checkin_mood_pain", "en", sms_context("checkin_mood_pain", "en"))
    assert "Reply with 2 numbers, mood then pain, e.g. 6 3" in body


@pytest.mark.parametrize("language", LANGUAGES)
def test_help_reply_has_what_ctia_asks(renderer: Renderer, language: str) -> None:
    body = renderer.sms("help", language, sms_context("help", language))
    for needle in (CLINIC, PHONE, "STOP", "988", "911"):
        assert needle in body
    assert body.startswith(f"{CLINIC}: ")
    if language == "en":
        for phrase in (
            "Msg & data rates may apply",
            "Msg frequency varies",
            f"Call {PHONE}.",
            "Reply STOP to opt out.",
            "Emergency? Call/text 988 or 911.",
        ):
            assert phrase in body
    else:
        for phrase in (
            "Pueden aplicar tarifas de msj y datos",
            "Frec. variable",
            f"Tel. {PHONE}.",
            "STOP para salir.",
            "No es para emergencias: 988 o 911.",
        ):
            assert phrase in body
    assert encoding(body) == "GSM-7" and segments(body) == 1, (len(body), body)
    named = renderer.sms("help", language, sms_context("help", language) | {"sms_sender": "RPW"})
    assert named.startswith("RPW: ") and CLINIC not in named


UNMONITORED = {"en": "This line is not monitored 24/7.", "es": "No leemos textos 24/7."}
# The longest clinic names that still lead the crisis reply with the phone above (160 exactly).
NAME_FITS = {"en": "Northside Pain & Wellness Ctr", "es": "Northside Pain and Wellness"}
LONG_NAME = "Riverside Comprehensive Pain and Wellness Center of the Hudson Valley"


@pytest.mark.parametrize("language", LANGUAGES)
def test_crisis_reply_names_988_911_the_clinic_and_the_unmonitored_line(
    renderer: Renderer, language: str
) -> None:
    body = renderer.sms("crisis_reply", language, sms_context("crisis_reply", language))
    assert body.startswith(f"{CLINIC}: ")
    for needle in ("988", "911", PHONE, UNMONITORED[language]):
        assert needle in body
    how = {"en": "Call or text 988", "es": "Llame al 988 y oprima 2, o mande AYUDA al 988"}
    assert how[language] in body


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("phone", [PHONE, None])
@pytest.mark.parametrize("name", [CLINIC, LONG_NAME, "Clínica San José"])
def test_the_crisis_reply_is_one_gsm7_segment(
    renderer: Renderer, language: str, phone: str | None, name: str
) -> None:
    # It must never queue behind itself at 1 segment a second. Both languages keep to GSM-7
    # (the Spanish avoids á, í, ó, ú); a name that would add a segment, or make the Spanish
    # UCS-2, is left out and the numbers stay.
    context = dict(sms_context("crisis_reply", language), clinic_name=name, clinic_phone=phone)
    body = renderer.sms("crisis_reply", language, context)
    assert encoding(body) == "GSM-7", body
    assert segments(body) == 1 and len(body) <= 160, (len(body), body)
    assert "988" in body and "911" in body and UNMONITORED[language] in body
    assert (PHONE in body) == (phone is not None)
    left_out = name == LONG_NAME or (name == "Clínica San José" and language == "es")
    opening = {"en": "We told our care team.", "es": "Avisamos al equipo."}
    if left_out:
        assert body.startswith(opening[language]), body
    else:
        assert body.startswith(f"{to_gsm_safe(name)}: {opening[language]}"), body


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_crisis_reply_keeps_the_name_up_to_160_characters(
    renderer: Renderer, language: str
) -> None:
    fits = NAME_FITS[language]
    context = dict(sms_context("crisis_reply", language), clinic_name=fits)
    body = renderer.sms("crisis_reply", language, context)
    assert len(body) == 160 and body.startswith(fits + ": ")
    longer = renderer.sms("crisis_reply", language, dict(context, clinic_name=fits + "s"))
    assert not longer.startswith(fits) and segments(longer) == 1 and PHONE in longer


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_oncall_page_is_one_gsm7_segment(renderer: Renderer, language: str) -> None:
    link = "https://checkin.riverside-comprehensive-pain-and-wellness.example/followups/123456"
    body = renderer.sms("oncall_page", language, common(language, link=link))
    assert encoding(body) == "GSM-7" and segments(body) == 1, body


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ["crisis_reply", "help", "stop_confirmation"])
def test_replies_drop_the_phone_when_none_is_set(
    renderer: Renderer, name: str, language: str
) -> None:
    body = renderer.sms(name, language, dict(sms_context(name, language), clinic_phone=None))
    assert "None" not in body
    assert "988" in body or name == "stop_confirmation"


@pytest.mark.parametrize("language", LANGUAGES)
def test_stop_confirmation_says_how_to_resume(renderer: Renderer, language: str) -> None:
    body = renderer.sms("stop_confirmation", language, sms_context("stop_confirmation", language))
    assert body.startswith(f"{CLINIC}: ") and PHONE in body
    expected = {
        "en": ("You are unsubscribed.", "no more text messages", "Reply START to resume."),
        "es": ("Baja confirmada.", "Ya no le enviaremos mensajes", "responda START."),
    }
    for phrase in expected[language]:
        assert phrase in body
    assert encoding(body) == "GSM-7" and segments(body) == 1, (len(body), body)


@pytest.mark.parametrize("language", LANGUAGES)
def test_oncall_page_carries_only_the_link(renderer: Renderer, language: str) -> None:
    body = renderer.sms("oncall_page", language, sms_context("oncall_page", language))
    expected = {"en": "Urgent follow-up waiting: ", "es": "Seguimiento urgente pendiente: "}
    assert body == expected[language] + LINK


@pytest.mark.parametrize("language", LANGUAGES)
def test_clarify_gives_the_range(renderer: Renderer, language: str) -> None:
    body = renderer.sms("clarify", language, common(language, low=0, high=3))
    assert "0" in body and "3" in body
    two = renderer.sms("clarify", language, common(language, low=0, high=10, numbers=2))
    assert "6 3" in two


def test_english_sms_are_made_gsm_safe(renderer: Renderer) -> None:
    context = dict(
        sms_context("reminder_consult", "en"),
        location="Suite 3 \u2013 \u201cB\u201d\u00a0wing, Bogotá Ave",
    )
    body = renderer.sms("reminder_consult", "en", context)
    assert is_gsm7(body)
    assert 'Suite 3 - "B" wing, Bogota Ave' in body


def test_spanish_sms_keep_their_accents(renderer: Renderer) -> None:
    body = renderer.sms("checkin_item", "es", item_context("phq9", "es", 8, first=False))
    assert "estaría" in body and "Ningún día" in body


# --- email -----------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", EMAIL_NAMES)
def test_every_email_renders_without_forbidden_words(
    renderer: Renderer, name: str, language: str
) -> None:
    email = renderer.email(name, language, email_context(name, language))
    assert isinstance(email, RenderedEmail)
    assert email.subject and "\n" not in email.subject
    assert email.text and email.html.startswith("<!DOCTYPE html>")
    for part in (email.subject, email.text, email.html):
        assert "{{" not in part and "{%" not in part
        assert not FORBIDDEN.search(body_words(name, part)), part
    if name != "oncall_page":
        assert CLINIC in email.text
        assert "Riverside Pain &amp; Wellness" in email.html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", CHECKINS)
def test_checkin_emails_carry_one_opaque_form_link_and_no_question(
    renderer: Renderer, name: str, language: str
) -> None:
    context = email_context(name, language)
    email = renderer.email(name, language, context)
    assert FORM_URL in email.text and f'href="{FORM_URL}"' in email.html
    # The questions are on the page the link opens: nothing clinical in an inbox preview, and
    # no answer in any URL (a scanner's or proxy's log).
    for item in context["items"]:
        assert item["text"] not in email.text and item["text"] not in email.html
    assert not re.search(r"https?://\S+/r/", email.text + email.html)
    assert len(re.findall(r"https?://", email.text)) == 1


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_link_sms_is_one_gsm7_segment_with_a_long_clinic_name_and_url(
    renderer: Renderer, language: str
) -> None:
    long_url = "https://checkin.riverside-comprehensive-pain-and-wellness.example/q/" + "x" * 22
    body = renderer.sms("checkin_link", language, common(language, form_url=long_url))
    assert body.endswith(long_url) and CLINIC in body
    assert encoding(body) == "GSM-7" and segments(body) == 1, (len(body), body)
    assert not FORBIDDEN.search(body) and not re.search(r"\b(PEG|PHQ|GAD)\b", body)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", REMINDERS)
def test_reminder_emails_use_links_when_given(renderer: Renderer, name: str, language: str) -> None:
    context = dict(
        email_context(name, language),
        confirm_url=f"{LINK}/confirm",
        reschedule_url=f"{LINK}/reschedule",
    )
    email = renderer.email(name, language, context)
    assert f"{LINK}/confirm" in email.text and f'href="{LINK}/confirm"' in email.html
    assert WHEN[language] in email.subject


def test_the_html_part_escapes_and_the_text_part_does_not(renderer: Renderer) -> None:
    script = "<script>alert(1)</script>"
    context = dict(email_context("reminder_consult", "en"), location=script, clinic_name=script)
    email = renderer.email("reminder_consult", "en", context)
    assert script not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert script in email.text
    checkin = renderer.email(
        "checkin_mood", "en", common("en", items=email_items("mood", "en"), form_url=script)
    )
    assert script not in checkin.html


def test_a_newline_in_a_value_cannot_start_a_new_header(renderer: Renderer) -> None:
    context = dict(email_context("reminder_consult", "en"), clinic_name="Clinic\nBcc: x@y.z")
    assert "\n" not in renderer.email("reminder_consult", "en", context).subject


def test_the_oncall_email_carries_only_the_link(renderer: Renderer) -> None:
    email = renderer.email("oncall_page", "en", common("en", link=LINK))
    assert email.subject == "Urgent follow-up waiting"
    assert email.text == f"Urgent follow-up waiting: {LINK}"
    assert CLINIC not in email.html


# --- errors ----------------------------------------------------------------------------------


def test_a_missing_variable_raises(renderer: Renderer) -> None:
    context = sms_context("reminder_infusion", "en")
    del context["when"]
    with pytest.raises(jinja2.UndefinedError):
        renderer.sms("reminder_infusion", "en", context)
    with pytest.raises(jinja2.UndefinedError):
        renderer.email("reminder_infusion", "en", context)
    with pytest.raises(jinja2.UndefinedError):
        renderer.sms("checkin_mood", "es", {"language": "es"})


@pytest.mark.parametrize(
    ("name", "language"),
    [
        ("no_such_template", "en"),
        ("checkin_mood", "fr"),
        ("../sms/en/ack", "en"),
        ("_layout", "en"),
        ("ack", "../en"),
        ("Ack", "en"),
    ],
)
def test_unknown_templates_raise_template_not_found(
    renderer: Renderer, name: str, language: str
) -> None:
    with pytest.raises(TemplateNotFound):
        renderer.sms(name, language, common("en"))
    with pytest.raises(LookupError):
        renderer.email(name, language, common("en"))


def test_ack_is_sms_only(renderer: Renderer) -> None:
    with pytest.raises(TemplateNotFound):
        renderer.email("ack", "en", common("en"))


def test_a_custom_templates_dir(tmp_path: Any) -> None:
    (tmp_path / "sms" / "en").mkdir(parents=True)
    (tmp_path / "sms" / "en" / "hello.txt.j2").write_text("  Hi {{ clinic_name }} \u2019  \n")
    renderer = Renderer(tmp_path)
    assert renderer.names("sms") == ["hello"]
    assert renderer.names("email") == []
    assert renderer.sms("hello", "en", {"clinic_name": "X"}) == "Hi X '"


# --- dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "language", "expected"),
    [
        (datetime(2026, 3, 10, 14, 0), "en", "Tue Mar 10, 2:00 PM"),
        (datetime(2026, 3, 10, 14, 0), "es", "mar 10 mar, 14:00"),
        (datetime(2026, 3, 1, 0, 5), "en", "Sun Mar 1, 12:05 AM"),
        (datetime(2026, 3, 1, 0, 5), "es", "dom 1 mar, 0:05"),
        (datetime(2026, 9, 30, 12, 30), "en", "Wed Sep 30, 12:30 PM"),
        (datetime(2026, 9, 30, 12, 30), "es", "mié 30 sep, 12:30"),
        (datetime(2026, 9, 26, 9, 0), "es", "sab 26 sep, 9:00"),
        (datetime(2026, 12, 31, 23, 59), "en", "Thu Dec 31, 11:59 PM"),
        (datetime(2026, 1, 2, 11, 59), "en", "Fri Jan 2, 11:59 AM"),
    ],
)
def test_format_when(local: datetime, language: str, expected: str) -> None:
    assert format_when(local, language) == expected


def test_format_when_rejects_an_unknown_language() -> None:
    with pytest.raises(ValueError):
        format_when(datetime(2026, 3, 10, 14, 0), "fr")


def test_the_longest_dates_used_above() -> None:
    assert len(WHEN["en"]) == 20
    assert len(WHEN["es"]) == 17
    assert "á" not in WHEN["es"]


@pytest.mark.parametrize(
    ("name", "language", "expected"),
    [
        ("appointment_confirm", "en", f"{CLINIC}: Confirmed: Tue Mar 10, 2:00 PM."),
        ("appointment_confirm", "es", f"{CLINIC}: Confirmada: mar 10 mar, 14:00."),
        ("appointment_reschedule", "en", f"{CLINIC}: We'll call you to find a new time."),
        ("appointment_late", "en", f"{CLINIC}: Thanks for letting us know, see you soon."),
        ("appointment_late", "es", f"{CLINIC}: Gracias por avisarnos, hasta pronto."),
    ],
)
def test_appointment_replies_say_the_outcome(
    renderer: Renderer, name: str, language: str, expected: str
) -> None:
    when = format_when(datetime(2026, 3, 10, 14, 0), language)
    assert renderer.sms(name, language, common(language, when=when)) == expected


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_possible_risk_reply_names_988_and_the_clinic_and_nothing_clinical(
    renderer: Renderer, language: str
) -> None:
    body = renderer.sms(
        "possible_risk_reply", language, sms_context("possible_risk_reply", language)
    )
    assert "988" in body and PHONE in body and body.startswith(f"{CLINIC}: ")
    assert not FORBIDDEN.search(body), body
    # One GSM-7 segment in both languages with the long clinic name and phone.
    assert is_gsm7(body) and segments(body) == 1, (len(body), body)
    how = {"en": "call or text 988.", "es": "llame al 988 y oprima 2, o mande AYUDA al 988."}
    assert how[language] in body
    without_phone = renderer.sms(
        "possible_risk_reply", language, dict(common(language), clinic_phone=None)
    )
    assert "None" not in without_phone and "988" in without_phone


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_passed_on_reply_says_a_person_will_read_it_and_where_to_turn_now(
    renderer: Renderer, language: str
) -> None:
    # Free text we could not read: it went to a clinician, and the line is not for
    # emergencies (988, 911). Nothing clinical, nothing of what the patient wrote.
    body = renderer.sms("passed_on", language, sms_context("passed_on", language))
    assert body.startswith(f"{CLINIC}: ") and PHONE in body
    assert "988" in body and "911" in body and "24/7" in body
    assert {"en": "our care team", "es": "al equipo"}[language] in body
    assert not FORBIDDEN.search(body), body
    assert is_gsm7(body) and segments(body) == 1, (len(body), body)
    without_phone = renderer.sms("passed_on", language, dict(common(language), clinic_phone=None))
    assert "None" not in without_phone and "988" in without_phone


# --- consent texts and the day after a visit (docs/consent.md, docs/after-visit.md) ----------


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_optin_confirmation_says_what_ctia_asks(renderer: Renderer, language: str) -> None:
    body = renderer.sms("optin_confirmation", language, common(language))
    assert body.startswith(f"{CLINIC}: ") and "HELP" in body and "STOP" in body
    if language == "en":
        for phrase in (
            "check-ins and appointment reminders",
            "Msg frequency varies",
            "Msg & data rates may apply",
            "Reply HELP for help, STOP to opt out",
        ):
            assert phrase in body
    named = renderer.sms(
        "optin_confirmation", language, common(language, sms_sender="Riverside Clinic")
    )
    assert named.startswith("Riverside Clinic: ")


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_day_after_and_no_show_texts_say_nothing_clinical(
    renderer: Renderer, language: str
) -> None:
    after = renderer.sms("after_visit", language, common(language))
    assert "0" in after and "10" in after
    missed = renderer.sms("noshow", language, common(language))
    assert " R " in missed and "CANCEL" not in missed.upper()
    for body in (after, missed):
        assert not re.search(r"\b(visit|infus\w*|treat\w*|dose|session|sesi)\b", body, re.I)
