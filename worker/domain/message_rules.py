"""What may go in a patient-facing message body (CLINICAL.md, "What may go in a message").

No drug, diagnosis, score or instrument name in any SMS or email (phones are read by others), and
SMS bodies within a segment budget: one GSM-7 segment with realistic values, except a
questionnaire item sent by SMS (questionnaire_mode=sms only), below. The template tests
and `checkin templates check` (a clinic's overrides) apply the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# Words that must never reach a patient-facing body: drugs, diagnoses, instrument names.
FORBIDDEN: Final = re.compile(
    r"\b(ketamin[ae]|esketamin[ae]|spravato|depression|depressive|depresi[oó]n|depresiv[oa]|"
    r"anxiety|ansiedad|ptsd|tept|bipolar|phq|gad|pain score|opioids?|opioides?|suicide|suicidal|"
    r"suicidio|suicida|overdose|sobredosis|infusion|infusi[oó]n|psychiatr\w*|psiqui\w*|"
    r"antidepressant\w*|antidepresiv\w*|trastorno)\b",
    re.IGNORECASE,
)
# A proper name: allowed where the crisis numbers are given.
LIFELINE: Final = "988 Suicide & Crisis Lifeline"
_LIFELINE_ALLOWED: Final = frozenset({"crisis_reply", "help"})

# "CANCEL" is an opt-out word: a reminder must never ask for it.
_CANCEL: Final = re.compile(r"cancel", re.IGNORECASE)
_NO_CANCEL_PREFIXES: Final = ("reminder_", "infusion_prep")


def forbidden_words(name: str, text: str) -> list[str]:
    """The forbidden words in body `text` of template `name`, in order, deduplicated.

    The Lifeline's name is allowed in the crisis reply and the HELP reply (also HTML-escaped).
    """
    if name in _LIFELINE_ALLOWED:
        text = text.replace(LIFELINE, "").replace(LIFELINE.replace("&", "&amp;"), "")
    found = [m.group(0) for m in FORBIDDEN.finditer(text)]
    if name.startswith(_NO_CANCEL_PREFIXES) and _CANCEL.search(text):
        found.append("cancel")
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class SmsBudget:
    """How long an SMS of one template may be, counted with realistic values filled in."""

    segments: int
    gsm7: bool  # True: must be GSM-7 (one UCS-2 character halves a segment)


ONE_GSM7_SEGMENT: Final = SmsBudget(segments=1, gsm7=True)
# Every SMS a default installation sends to a patient is one GSM-7 segment (issue 11), the HELP,
# STOP and possible-risk replies included (docs/sms-texts.md). The one exception is a
# questionnaire item sent by SMS, which only patients set to questionnaire_mode=sms receive (the
# default is one link to the form): it carries the published wording, so PHQ-9 items 6-8 take two
# segments in English, and Spanish items keep their accents (UCS-2), PHQ-9's up to four.
_SMS_BUDGETS: Final[dict[tuple[str, str], SmsBudget]] = {
    ("checkin_item", "en"): SmsBudget(segments=2, gsm7=True),
    ("checkin_item", "es"): SmsBudget(segments=4, gsm7=False),
}


def sms_budget(name: str, language: str) -> SmsBudget:
    """The budget of SMS template `name` in `language`: one GSM-7 segment unless listed above."""
    return _SMS_BUDGETS.get((name, language), ONE_GSM7_SEGMENT)
