"""Issue 11, "Done means": every SMS a default installation sends to a patient is one GSM-7
segment with nothing clinical in it, in English and Spanish, on every weekday of every month.

The SMS templates are listed from the shipped folder: a new template fails
`test_every_sms_template_is_classified` until it is put in one of the three groups below, and
until then it is held to one segment like every patient SMS. Values are the longest realistic ones the
template tests use (a 25-character clinic name with "&", the phone "+1 (555) 010-4477", a
50-character location, a 64-character form link). How long a clinic or sender name may be for
each text: docs/sms-texts.md, measured by the tests at the end of this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from worker.domain.message_rules import forbidden_words, sms_budget
from worker.domain.names import LANGUAGES
from worker.domain.sms_text import encoding, segments
from worker.rendering import Renderer, format_when

CLINIC = "Riverside Pain & Wellness"
PHONE = "+1 (555) 010-4477"
LOCATION = "Riverside Medical Plaza, 4500 W Main St, Suite 210"
FORM_URL = "https://checkin.riverside-pain.example/q/Xb7qP0-rT9sLmN2vW4yZaQ"
LINK = "https://checkin.riverside-pain.example/followups/8f3a2c71"

# What a default installation sends to patients: one GSM-7 segment each.
SENT_TO_PATIENTS = frozenset(
    {
        "ack",
        "after_visit",
        "appointment_cancel_request",
        "appointment_confirm",
        "appointment_late",
        "appointment_reschedule",
        "checkin_link",
        "checkin_mood",
        "checkin_mood_pain",
        "checkin_pain",
        "checkin_sleep",
        "clarify",
        "crisis_reply",
        "help",
        "infusion_prep",
        "noshow",
        "optin_confirmation",
        "passed_on",
        "possible_risk_reply",
        "reminder_consult",
        "reminder_infusion",
        "reminder_physical_therapy",
        "reminder_therapy",
        "start_confirmation",
        "stop_confirmation",
    }
)
# Sent only to patients set to questionnaire_mode=sms (the default is checkin_link): it carries
# the published item wording and keeps its own budget (worker/domain/message_rules.py).
NOT_SENT_BY_DEFAULT = frozenset({"checkin_item"})
# Sent to staff, never to a patient.
STAFF_ONLY = frozenset({"oncall_page"})
# Templates whose context carries an appointment's date.
DATED = frozenset(
    {
        "reminder_consult",
        "reminder_infusion",
        "reminder_physical_therapy",
        "reminder_therapy",
        "infusion_prep",
        "appointment_confirm",
    }
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def patient_templates() -> list[str]:
    """The patient SMS, and any template not classified yet (held to the same rule)."""
    return sorted(set(Renderer().names("sms")) - NOT_SENT_BY_DEFAULT - STAFF_ONLY)


def _days() -> Iterator[datetime]:
    # Two years of days at 12:30 (the widest time in both languages): every weekday in every
    # month, with one- and two-digit days.
    start = datetime(2026, 1, 1, 12, 30)
    for day in range(2 * 365):
        yield start + timedelta(days=day)


def contexts(name: str, language: str) -> Iterator[dict[str, Any]]:
    """Every context the product can pass `name`, filled with the longest realistic values."""
    base: dict[str, Any] = {"clinic_name": CLINIC, "clinic_phone": PHONE, "language": language}
    variants: list[dict[str, Any]] = [
        base,
        base | {"sms_sender": CLINIC},  # what services/outbound/claim.py passes
        base | {"clinic_phone": None},
    ]
    for ctx in variants:
        if name in DATED:
            for local in _days():
                yield ctx | {"when": format_when(local, language), "location": LOCATION}
        elif name == "clarify":
            yield ctx | {"low": 0, "high": 10}
            yield ctx | {"low": 0, "high": 10, "numbers": 2}
        elif name == "checkin_link":
            yield ctx | {"form_url": FORM_URL}
        else:
            yield ctx


def test_every_sms_template_is_classified(renderer: Renderer) -> None:
    names = set(renderer.names("sms"))
    assert not SENT_TO_PATIENTS & (NOT_SENT_BY_DEFAULT | STAFF_ONLY)
    unclassified = names - SENT_TO_PATIENTS - NOT_SENT_BY_DEFAULT - STAFF_ONLY
    assert not unclassified, f"classify these SMS templates: {sorted(unclassified)}"
    assert names == SENT_TO_PATIENTS | NOT_SENT_BY_DEFAULT | STAFF_ONLY
    assert set(patient_templates()) == SENT_TO_PATIENTS


def test_the_dates_cover_every_weekday_of_every_month() -> None:
    seen = {(d.weekday(), d.month) for d in _days()}
    assert len(seen) == 7 * 12


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", patient_templates())
def test_every_patient_sms_is_one_gsm7_segment_with_nothing_clinical(
    renderer: Renderer, name: str, language: str
) -> None:
    rendered = 0
    for ctx in contexts(name, language):
        body = renderer.sms(name, language, ctx)
        assert body and "{{" not in body and "None" not in body, body
        assert encoding(body) == "GSM-7", body
        assert segments(body) == 1 and len(body) <= 160, (len(body), body)
        assert forbidden_words(name, body) == [], body
        if name in DATED:
            assert ctx["when"] in body
        rendered += 1
    assert rendered >= 3
    # `checkin templates check` holds a clinic's override of it to the same rule.
    assert sms_budget(name, language) == sms_budget("ack", "en")
    assert (sms_budget(name, language).segments, sms_budget(name, language).gsm7) == (1, True)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(NOT_SENT_BY_DEFAULT))
def test_only_the_questionnaire_mode_sms_item_keeps_a_larger_budget(
    name: str, language: str
) -> None:
    assert sms_budget(name, language).segments > 1


# The longest sender name (CHECKIN_SMS_SENDER_NAME, else CHECKIN_CLINIC_NAME) with which each
# consent reply is still one segment with the phone above; docs/sms-texts.md gives the same
# figures. They must carry the program name, so a longer one needs a short sender name.
MAX_NAME = {
    ("help", "en"): 29,
    ("help", "es"): 28,
    ("stop_confirmation", "en"): 35,
    ("stop_confirmation", "es"): 31,
    ("start_confirmation", "en"): 44,
    ("start_confirmation", "es"): 45,
    ("optin_confirmation", "en"): 34,
    ("optin_confirmation", "es"): 29,
}


@pytest.mark.parametrize(("name", "language"), sorted(MAX_NAME))
def test_the_documented_longest_sender_name(renderer: Renderer, name: str, language: str) -> None:
    longest = MAX_NAME[name, language]
    ctx = {"clinic_name": "x", "clinic_phone": PHONE, "language": language}
    fits = renderer.sms(name, language, ctx | {"sms_sender": "N" * longest})
    assert fits.startswith("N" * longest + ": ") and segments(fits) == 1, len(fits)
    over = renderer.sms(name, language, ctx | {"sms_sender": "N" * (longest + 1)})
    assert segments(over) == 2, len(over)


# The possible-risk reply, like the crisis reply, leads with the name only when it costs no
# segment; past these lengths the name is left out and 988 and the phone stay.
RISK_NAME_LEADS = {"en": 38, "es": 31}
# What each reply that points to help keeps whatever the sender's name: the possible-risk reply
# (in Spanish with the 988's Spanish options) and the reply to words we could not read.
KEEPS_WHATEVER_THE_NAME = {
    ("possible_risk_reply", "en"): ("988",),
    ("possible_risk_reply", "es"): ("988", "oprima 2", "AYUDA al 988"),
    ("passed_on", "en"): ("988", "911"),
    ("passed_on", "es"): ("988", "911"),
}


@pytest.mark.parametrize(("template", "language"), sorted(KEEPS_WHATEVER_THE_NAME))
@pytest.mark.parametrize("phone", [PHONE, None])
@pytest.mark.parametrize(
    "sender", ["N" * RISK_NAME_LEADS["en"], "N" * 80, "Clínica San José", CLINIC]
)
def test_the_replies_that_point_to_help_keep_988_and_the_phone_whatever_the_name(
    renderer: Renderer, template: str, language: str, phone: str | None, sender: str
) -> None:
    ctx = {"clinic_name": CLINIC, "clinic_phone": phone, "language": language}
    body = renderer.sms(template, language, ctx | {"sms_sender": sender})
    assert encoding(body) == "GSM-7" and segments(body) == 1, (len(body), body)
    assert (PHONE in body) == (phone is not None), body
    for kept in KEEPS_WHATEVER_THE_NAME[template, language]:
        assert kept in body, (kept, body)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_possible_risk_reply_names_the_sender_up_to_the_documented_length(
    renderer: Renderer, language: str
) -> None:
    ctx = {"clinic_name": CLINIC, "clinic_phone": PHONE, "language": language}
    longest = "N" * RISK_NAME_LEADS[language]
    body = renderer.sms("possible_risk_reply", language, ctx | {"sms_sender": longest})
    assert body.startswith(longest + ": ") and len(body) == 160
    left_out = renderer.sms("possible_risk_reply", language, ctx | {"sms_sender": longest + "N"})
    assert not left_out.startswith("N") and "988" in left_out and PHONE in left_out


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", patient_templates())
def test_a_sender_name_replaces_the_clinic_name_in_every_patient_sms(
    renderer: Renderer, name: str, language: str
) -> None:
    # docs/sms-texts.md: a clinic name with á, í, ó or ú makes a text UCS-2; the clinic sets
    # CHECKIN_SMS_SENDER_NAME without them, and then no text carries the clinic's own name.
    accented, sender = "Clínica del Río", "Clinica del Rio"
    ctx = next(contexts(name, language)) | {"clinic_name": accented, "sms_sender": sender}
    body = renderer.sms(name, language, ctx)
    assert accented not in body and encoding(body) == "GSM-7", body
    assert segments(body) == 1, (len(body), body)
