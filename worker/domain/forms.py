"""Questionnaire links: the token, and reading a submitted form. Pure; no I/O.

A token is 16 random bytes (128 bits) in URL-safe base64: 22 characters that say nothing about
the patient, the check-in, the instrument or an answer. Only its SHA-256 is stored, so the
database (or a backup, or a log of SQL) never holds a working link. SHA-256 without a salt is
enough here: the input is a random 128-bit secret, not a password that could be guessed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from datetime import date
from typing import Final

from worker.domain.instruments import Instrument

TOKEN_BYTES: Final = 16
TOKEN_LENGTH: Final = 22  # base64 of 16 bytes, unpadded
_TOKEN: Final = re.compile(r"^[A-Za-z0-9_-]{22}$")
# Instruments that go by link by default (CLINICAL.md): the multi-item questionnaires.
LINK_INSTRUMENTS: Final = frozenset({"phq9", "gad7", "peg", "phq2", "gad2"})
QUESTIONNAIRE_MODES: Final = ("link", "sms")
# Wrong dates of birth a link takes before it is refused for good (the clinic can send another).
DOB_ATTEMPTS: Final = 5


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    """Anything else is refused before the database is asked."""
    return bool(_TOKEN.match(token))


def read_answers(instrument: Instrument, form: Mapping[str, str]) -> dict[str, int]:
    """The answered items of a submitted form, item key -> value. An item left blank, or with
    a value outside its range (a tampered form), is missing: never guessed."""
    values: dict[str, int] = {}
    for item in instrument.items:
        raw = (form.get(item.key) or "").strip()
        if not raw.isdigit() or len(raw) > 2:
            continue
        value = int(raw)
        if item.minimum <= value <= item.maximum:
            values[item.key] = value
    return values


def read_dob(form: Mapping[str, str]) -> date | None:
    """The date of birth typed as month, day and year (the GOV.UK date pattern), or None."""
    try:
        month, day, year = (int((form.get(k) or "").strip()) for k in ("dob_m", "dob_d", "dob_y"))
        return date(year, month, day)
    except ValueError:
        return None
