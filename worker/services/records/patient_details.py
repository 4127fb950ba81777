"""A patient's details as staff type them, checked once: the same rules and the same messages
whether a patient is added (records/patients.py) or edited (records/patient_updates.py), from the
CLI, the API, the dashboard or an import.

A blank phone, email or send window means "none" (a form's empty field), never an error of its
own; what the chosen channel needs is then said plainly ("a phone number is required for the sms
channel"). Errors name the field they are about, so the API's 422 and the dashboard's form can
point at it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from worker.config import parse_window
from worker.domain.contact import ContactError, normalize_email, normalize_phone
from worker.domain.names import CHANNELS, LANGUAGES
from worker.domain.schedule import ScheduleError, validate_zone
from worker.services.errors import InvalidInput
from worker.services.input_limits import NAME_MAX, check_text


@dataclass(frozen=True)
class Details:
    name: str
    tz: str
    channel: str
    phone: str | None  # E.164
    email: str | None  # normalised
    send_window: str | None
    language: str


def check_details(
    *,
    name: str,
    tz: str,
    channel: str,
    phone: str | None,
    email: str | None,
    send_window: str | None,
    language: str,
) -> Details:
    """The details normalised, or InvalidInput (with its field) on the first that is wrong."""
    name = check_text(name, "name", NAME_MAX).strip()
    if not name:
        raise InvalidInput("name is empty", field="name")
    try:
        tz = validate_zone(tz)
    except ScheduleError as exc:
        raise InvalidInput(str(exc), field="tz") from None
    phone_e164 = _contact(normalize_phone, phone, "phone")
    email_norm = _contact(normalize_email, email, "email")
    if channel not in CHANNELS:
        raise InvalidInput(
            f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}", field="channel"
        )
    if language not in LANGUAGES:
        raise InvalidInput(
            f"language must be one of {', '.join(LANGUAGES)}, got {language!r}", field="language"
        )
    if channel == "sms" and not phone_e164:
        raise InvalidInput("a phone number is required for the sms channel", field="phone")
    if channel == "email" and not email_norm:
        raise InvalidInput("an email address is required for the email channel", field="email")
    window = (send_window or "").strip() or None
    if window is not None:
        try:
            parse_window(window)
        except ValueError as exc:
            raise InvalidInput(f"send window: {exc}", field="send_window") from None
    return Details(name, tz, channel, phone_e164, email_norm, window, language)


def _contact(normalize: Callable[[str], str], raw: str | None, field: str) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return normalize(raw)
    except ContactError as exc:
        raise InvalidInput(str(exc), field=field) from None
