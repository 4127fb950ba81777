"""The same limits on free text for every entry point (command line, dashboard forms, API,
imports): a length, no NUL or other control characters, no bidirectional-override characters
(which make "Alex" render as something else in a clinician's list), valid Unicode. The API's
own validation says the same earlier; this is the line no caller can skip."""

from __future__ import annotations

import re
from typing import Final

from worker.services.errors import InvalidInput

NAME_MAX: Final = 200
NOTE_MAX: Final = 2000
SHORT_MAX: Final = 500

# C0 controls but tab, newline and carriage return; DEL and the C1 controls.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Bidirectional embeddings, overrides and isolates (Trojan Source, CVE-2021-42574).
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def check_text(value: str, label: str, max_len: int, *, multiline: bool = False) -> str:
    """`value` if it is acceptable text, else InvalidInput naming `label` (nothing written)."""
    if len(value) > max_len:
        raise InvalidInput(f"{label} is longer than {max_len} characters")
    if "\x00" in value:
        raise InvalidInput(f"{label} must not contain NUL characters")
    if _CONTROLS.search(value) or (not multiline and ("\n" in value or "\r" in value)):
        raise InvalidInput(f"{label} must not contain control characters")
    if _BIDI.search(value):
        raise InvalidInput(f"{label} must not contain bidirectional control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{label} must be valid Unicode text") from None
    return value


def check_optional(
    value: str | None, label: str, max_len: int, *, multiline: bool = False
) -> str | None:
    return None if value is None else check_text(value, label, max_len, multiline=multiline)
