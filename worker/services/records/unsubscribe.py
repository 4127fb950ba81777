"""One-click email unsubscribe (RFC 8058; docs/consent.md).

Every email to a patient carries a link `/u/{token}` in its footer and in the `List-Unsubscribe`
header, with `List-Unsubscribe-Post: List-Unsubscribe=One-Click`. The token is 32 random bytes;
only its SHA-256 is stored, with the patient it stands for: the URL names no patient, message or
channel. GET shows a confirmation page (mail scanners fetch links: a GET records nothing); POST,
from that page's button or from the mail provider's one-click request, withdraws email consent
(audited like every consent change, pending emails suppressed). A second POST changes nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from worker.config import Settings
from worker.services.records.patients import has_consent, withdraw_consent
from worker.store.models import Patient, UnsubscribeToken

PATH = "/u/"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_link(
    settings: Settings, patient_id: int, message_id: int, now: datetime
) -> tuple[str, dict[str, Any]]:
    """A fresh unsubscribe URL for one email to this patient, and the row to store (its hash
    only). The send path inserts a whole chunk's rows with one statement (`store_links`), as it
    does the questionnaire and appointment links."""
    token = secrets.token_urlsafe(32)
    row = {
        "token_hash": _hash(token),
        "patient_id": patient_id,
        "channel": "email",
        "message_id": message_id,
        "created_at": now,
    }
    return f"{settings.public_url.rstrip('/')}{PATH}{token}", row


def store_links(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(UnsubscribeToken), rows)


def headers(url: str, settings: Settings) -> dict[str, str]:
    """The RFC 2369 / RFC 8058 headers for an email whose unsubscribe link is `url`."""
    targets = [f"<{url}>"]
    if settings.email_from and "@" in settings.email_from:
        # A mailto as well, for clients that only know RFC 2369 (the web link does the work).
        targets.append(f"<mailto:{settings.email_from}?subject=unsubscribe>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


@dataclass(frozen=True)
class UnsubscribeView:
    """What the page shows: `ask` (GET, consent in force), `done` (withdrawn now or before),
    `invalid` (no such token)."""

    status: str
    language: str = "en"


def view(session: Session, token: str) -> tuple[UnsubscribeView, UnsubscribeToken | None]:
    row = session.scalar(
        select(UnsubscribeToken).where(UnsubscribeToken.token_hash == _hash(token))
    )
    if row is None:
        return UnsubscribeView("invalid"), None
    patient = session.get(Patient, row.patient_id)
    language = patient.language if patient is not None else "en"
    if not has_consent(session, row.patient_id, row.channel):
        return UnsubscribeView("done", language), row
    return UnsubscribeView("ask", language), row


def unsubscribe(session: Session, token: str, now: datetime) -> UnsubscribeView:
    """Withdraw the consent this token stands for; idempotent. Runs in the caller's transaction."""
    shown, row = view(session, token)
    if row is None:
        return shown
    if shown.status == "ask":
        withdraw_consent(
            session,
            row.patient_id,
            row.channel,
            now=now,
            source=f"email unsubscribe link (message {row.message_id})",
            actor="patient",
        )
    if row.used_at is None:
        row.used_at = now
    return UnsubscribeView("done", shown.language)
