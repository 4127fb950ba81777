"""Validation of the ways we reach a patient: phone numbers (E.164), email addresses, windows."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email


class ContactError(ValueError):
    """An invalid phone or email; the message is safe to show and names no other data."""


def normalize_phone(raw: str, default_region: str = "US") -> str:
    """Return the number in E.164, or raise ContactError.

    A number without a leading '+' is read as a `default_region` national number, because
    clinic staff type "(415) 555-2671" far more often than "+14155552671".
    """
    text = raw.strip()
    if not text:
        raise ContactError("phone number is empty")
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise ContactError(
            f"invalid phone number: {exc.args[0] if exc.args else 'unparseable'}"
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise ContactError("invalid phone number: not a valid number for its country")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """Return the normalised address, or raise ContactError. No DNS look-up (offline-safe)."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ContactError(f"invalid email address: {exc}") from None
