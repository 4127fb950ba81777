"""The fixed vocabularies of CONTRACT.md, in one place so every layer agrees."""

from __future__ import annotations

from typing import Final

INSTRUMENTS: Final = ("mood", "pain", "mood_pain", "sleep", "phq2", "phq9", "gad2", "gad7", "peg")
# Questionnaires about "the last two weeks" go at most weekly (CLINICAL.md).
TWO_WEEK_INSTRUMENTS: Final = ("phq2", "phq9", "gad2", "gad7")
APPOINTMENT_KINDS: Final = ("infusion", "therapy", "physical_therapy", "consult")
CHANNELS: Final = ("sms", "email")
LANGUAGES: Final = ("en", "es")
FOLLOWUP_REASONS: Final = (
    "crisis_language",
    "possible_risk",
    "phq9_item9",
    "high_pain",
    "low_mood",
    "positive_screen",
    "worsening",
    "missed_checkins",
    "unparseable_reply",
    "confirm_request",
    "reschedule_request",
    "cancel_request",
    "late_arrival",
    "opt_out",
    "delivery_failed",
    "phq9_item9_unanswered",
    "no_show",
    "after_visit",
)
SEVERITIES: Final = ("urgent", "high", "routine")
