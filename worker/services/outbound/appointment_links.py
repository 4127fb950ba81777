"""Issuing the confirm / request-a-new-time links of an appointment reminder email as it is
rendered (the page and the POST that records the answer: services/inbound/appointment_links.py).

Like a questionnaire's form link (form_links.py): one opaque random token per email, only its
hash stored, the row written in the send's own transaction (one INSERT for the chunk) before the
body that carries it can reach the provider. The row names the appointment and the version the
reminder was for and expires when the appointment starts: a link never confirms a time that
has since moved. The two URLs share the token; the action is the last path segment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import insert
from sqlalchemy.orm import Session

from worker.config import Settings
from worker.domain.forms import new_token, token_hash
from worker.store.models import AppointmentLink

PATH: Final = "/a/"
ACTIONS: Final = ("confirm", "reschedule")


def carries_links(*, channel: str, kind: str, appointment_id: int | None) -> bool:
    """Every appointment reminder email; never an SMS (a reply to the text does the same)."""
    return channel == "email" and kind == "reminder" and appointment_id is not None


def new_links(
    settings: Settings,
    *,
    message_id: int,
    patient_id: int,
    appointment_id: int,
    appointment_version: int,
    starts_at: datetime,
    now: datetime,
) -> tuple[dict[str, str], dict[str, Any]]:
    """The template's `confirm_url` and `reschedule_url`, and the row to store (its hash only).
    The caller inserts the rows of a whole chunk with one statement (`store_links`)."""
    token = new_token()
    base = f"{settings.public_url.rstrip('/')}{PATH}{token}"
    row = {
        "token_hash": token_hash(token),
        "appointment_id": appointment_id,
        "appointment_version": appointment_version,
        "patient_id": patient_id,
        "message_id": message_id,
        "created_at": now,
        "expires_at": starts_at,
    }
    return {f"{action}_url": f"{base}/{action}" for action in ACTIONS}, row


def store_links(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(AppointmentLink), rows)
