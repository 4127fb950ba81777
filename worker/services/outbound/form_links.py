"""Issuing private questionnaire links as messages are rendered, and recognising the check-ins
that were sent as one.

A link is issued when its message is rendered (the body must carry it), inside the send's own
transaction: the row exists before the provider is called, like the message row itself. A
message rendered again (a retry after a transient error) gets a new token; the old one, never
delivered, stays harmless: both lead to the same check-in, which takes one submission.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from worker.config import Settings
from worker.domain.forms import LINK_INSTRUMENTS, new_token, token_hash
from worker.store.models import FormLink, Message

# The SMS that carries a link instead of the questionnaire's first item.
LINK_TEMPLATE: Final = "checkin_link"


def goes_by_link(
    *, channel: str, template: str, instrument: str | None, item_index: int, mode: str | None
) -> bool:
    """Whether a check-in message carries a form link: every check-in email (the answer is
    chosen on the page, never in the URL), and the opening SMS of a questionnaire unless the
    patient keeps the one-item-per-text conversation (questionnaire_mode=sms)."""
    if instrument is None:
        return False
    if channel == "email":
        return True
    return (
        channel == "sms"
        and template == "checkin_item"
        and instrument in LINK_INSTRUMENTS
        and item_index == 0
        and mode != "sms"
    )


def new_link(
    settings: Settings,
    *,
    message_id: int,
    patient_id: int,
    instrument: str,
    now: datetime,
) -> tuple[str, dict[str, Any]]:
    """A new link for this message: its URL, and the row to store (its hash only). The caller
    inserts the rows of a whole chunk with one statement (`store_links`)."""
    token = new_token()
    row = {
        "token_hash": token_hash(token),
        "message_id": message_id,
        "patient_id": patient_id,
        "instrument": instrument,
        "created_at": now,
        "expires_at": now + timedelta(hours=settings.form_ttl_hours),
        "dob_failures": 0,
    }
    return f"{settings.public_url.rstrip('/')}/q/{token}", row


def store_links(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(FormLink), rows)


def is_form_checkin(session: Session, checkin_id: int) -> bool:
    """The check-in went out as a form link: it is answered on the form, not by text."""
    return (
        session.scalar(
            select(FormLink.id)
            .join(Message, Message.id == FormLink.message_id)
            .where(Message.checkin_id == checkin_id)
            .limit(1)
        )
        is not None
    )
