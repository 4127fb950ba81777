"""The monthly "Reply STOP to opt out" line: which form fits a body without costing a segment.

CTIA expects recurring programs to remind people how to stop. A notice never makes an SMS
longer than one segment: the longest form that fits is used; when none fits, the body goes as it
is and the notice waits for the next SMS short enough to carry it (services/outbound/stop_notice.py).
"""

from __future__ import annotations

import re
from typing import Final

from worker.domain.sms_text import encoding, segments

# Longest first. Every form is GSM-7 and names the STOP keyword.
FORMS: Final[dict[str, tuple[str, ...]]] = {
    "en": ("Reply STOP to opt out.", "STOP to opt out.", "STOP=opt out"),
    "es": ("Responda STOP para salir.", "STOP para salir.", "STOP=salir"),
}
_NAMES_STOP = re.compile(r"\bSTOP\b")


def names_stop(body: str) -> bool:
    """The body already tells the patient how to stop (HELP reply, consent texts)."""
    return _NAMES_STOP.search(body) is not None


def with_stop_notice(body: str, language: str) -> str | None:
    """`body` with the longest notice form that keeps it one segment in its own encoding, or
    None when no form fits (or the body is more than one segment already)."""
    if segments(body) != 1:
        return None
    for form in FORMS.get(language, FORMS["en"]):
        candidate = f"{body} {form}"
        if segments(candidate) == 1 and encoding(candidate) == encoding(body):
            return candidate
    return None
