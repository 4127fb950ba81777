"""The questionnaire form a private link opens (GET/POST /q/{token}).

Opening the link (GET) shows the form and records nothing: mail scanners and link previews
fetch every link. A POST records what was answered, item by item, through the same code the
SMS path uses (services/answers.py), once: the link is claimed with a conditional UPDATE, so a
second submission, or two at once, shows "already received". An expired link records nothing.

With CHECKIN_FORM_VERIFY_DOB the page first asks for the patient's date of birth and shows
nothing else (not even what the questionnaire is) until it matches the one on file; after
DOB_ATTEMPTS wrong dates the link is refused for good. No cookie is needed: the date typed is
carried in the form's hidden fields and checked again on the submission that records answers.

PHQ-9 item 9 answered 1 or more starts the crisis path (services/crisis.py), as an answer by
text does; the page then shows the crisis numbers at once.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.domain.forms import DOB_ATTEMPTS, read_answers, read_dob, token_hash, well_formed
from worker.domain.instruments import Instrument, get_instrument
from worker.domain.rules import ITEM9_KEY
from worker.services.clinical.after_answers import (
    immediate_flags,
    raise_flags,
    raise_worsening,
    store_answers,
)
from worker.services.clinical.crisis import start_crisis_path
from worker.services.clinical.expiry import awaits_item9, item9_unanswered
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import CheckIn, FormLink, Message, Patient
from worker.store.record_status import CheckinStatus

log = logging.getLogger(__name__)

# What the page shows. "form": the questions; "verify": the date-of-birth step only;
# "received": answers recorded; "already": this check-in was submitted before; "expired";
# "invalid": no such link; "locked": too many wrong dates of birth; "unverifiable": the clinic
# asks for a date of birth and none is on file.
STATUSES = ("form", "verify", "received", "already", "expired", "invalid", "locked", "unverifiable")


@dataclass(frozen=True)
class FormPage:
    status: str
    language: str = "en"
    instrument: Instrument | None = None
    # Re-shown on the page (a submission with nothing answered keeps nothing else either).
    answers: Mapping[str, int] = field(default_factory=dict)
    # The date typed in the verification step, carried in hidden fields to the submission.
    dob: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None  # "dob_wrong" | "nothing_answered"
    attempts_left: int | None = None
    crisis: bool = False
    send: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Link:
    id: int
    message_id: int
    patient_id: int
    instrument: str
    expires_at: datetime
    used_at: datetime | None
    dob_failures: int


def _find(session: Session, token: str) -> _Link | None:
    if not well_formed(token):
        return None
    row = session.scalar(select(FormLink).where(FormLink.token_hash == token_hash(token)))
    if row is None:
        return None
    return _Link(
        row.id,
        row.message_id,
        row.patient_id,
        row.instrument,
        row.expires_at,
        row.used_at,
        row.dob_failures,
    )


def _checkin(session: Session, link: _Link) -> CheckIn | None:
    checkin_id = session.scalar(select(Message.checkin_id).where(Message.id == link.message_id))
    return session.get(CheckIn, checkin_id) if checkin_id is not None else None


def _closed(session: Session, link: _Link, checkin: CheckIn | None, now: datetime) -> str | None:
    """Why the link cannot take answers now (a page status), or None."""
    if checkin is None:
        return "invalid"  # its message never went out
    if link.used_at is not None or checkin.status in (
        CheckinStatus.ANSWERED,
        CheckinStatus.PARTIAL,
    ):
        return "already"
    if now >= link.expires_at:
        return "expired"
    if link.dob_failures >= DOB_ATTEMPTS:
        return "locked"
    return None


def _dob_fields(form: Mapping[str, str]) -> dict[str, str]:
    return {k: (form.get(k) or "").strip()[:4] for k in ("dob_m", "dob_d", "dob_y")}


def _dob_matches(patient: Patient, form: Mapping[str, str]) -> bool:
    typed = read_dob(form)
    if typed is None or patient.birth_date is None:
        return False
    # Compared in constant time: the answer must not leak through timing, however little.
    return hmac.compare_digest(typed.isoformat(), patient.birth_date.isoformat())


def open_form(rt: Runtime, token: str, now: datetime) -> FormPage:
    """What GET /q/{token} shows. Never writes anything."""
    with session_scope(rt.sessions) as session:
        link = _find(session, token)
        if link is None:
            return FormPage("invalid")
        patient = session.get(Patient, link.patient_id)
        assert patient is not None
        lang = patient.language
        closed = _closed(session, link, _checkin(session, link), now)
        if closed is not None:
            return FormPage(closed, lang)
        if rt.settings.form_verify_dob:
            if patient.birth_date is None:
                return FormPage("unverifiable", lang)
            return FormPage("verify", lang)
        return FormPage("form", lang, get_instrument(link.instrument, lang))


def submit_form(rt: Runtime, token: str, form: Mapping[str, str], now: datetime) -> FormPage:
    """What POST /q/{token} does: the date-of-birth step, or recording the answers. Returns
    the page to show and the ids of messages to send now (the crisis reply and the page)."""
    with session_scope(rt.sessions) as session:
        link = _find(session, token)
        if link is None:
            return FormPage("invalid")
        patient = session.get(Patient, link.patient_id)
        assert patient is not None
        lang = patient.language
        checkin = _checkin(session, link)
        closed = _closed(session, link, checkin, now)
        if closed is not None:
            return FormPage(closed, lang)
        assert checkin is not None
        instrument = get_instrument(link.instrument, lang)
        dob: dict[str, str] = {}
        if rt.settings.form_verify_dob:
            if patient.birth_date is None:
                return FormPage("unverifiable", lang)
            dob = _dob_fields(form)
            if not _dob_matches(patient, form):
                return _wrong_dob(session, link, lang, dob, tried=any(dob.values()))
            if form.get("step") == "verify":
                return FormPage("form", lang, instrument, dob=dob)
        answers = read_answers(instrument, form)
        if not answers:
            return FormPage("form", lang, instrument, dob=dob, error="nothing_answered")
        claimed = session.execute(
            update(FormLink)
            .where(FormLink.id == link.id, FormLink.used_at.is_(None))
            .values(used_at=now)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return FormPage("already", lang)
        crisis, send = _record(rt, session, patient, checkin, instrument, answers, link, now)
        log.info("form %d submitted: %d of %d items", link.id, len(answers), len(instrument.keys))
        return FormPage("received", lang, instrument, crisis=crisis, send=tuple(send))


def _wrong_dob(
    session: Session, link: _Link, lang: str, dob: dict[str, str], *, tried: bool
) -> FormPage:
    if not tried:
        return FormPage("verify", lang, attempts_left=DOB_ATTEMPTS - link.dob_failures)
    session.execute(
        update(FormLink)
        .where(FormLink.id == link.id)
        .values(dob_failures=FormLink.dob_failures + 1)
    )
    left = DOB_ATTEMPTS - link.dob_failures - 1
    log.info("form %d: wrong date of birth (%d attempts left)", link.id, max(left, 0))
    if left <= 0:
        return FormPage("locked", lang)
    return FormPage("verify", lang, error="dob_wrong", attempts_left=left)


def _record(
    rt: Runtime,
    session: Session,
    patient: Patient,
    checkin: CheckIn,
    instrument: Instrument,
    answers: dict[str, int],
    link: _Link,
    now: datetime,
) -> tuple[bool, list[int]]:
    """Store the answers and run the rules exactly as for answers by text."""
    complete = all(k in answers for k in instrument.keys)
    late = checkin.window_closes_at <= now
    every = store_answers(
        session, checkin, answers, now=now, source="form", partial=not complete, late=late
    )
    # One submission is the whole answer: whatever is missing now stays missing.
    checkin.status = CheckinStatus.ANSWERED if complete else CheckinStatus.PARTIAL
    checkin.answered_at = now
    flags = immediate_flags(checkin, every)
    raise_flags(session, patient, checkin, flags, now, {"source": "form"})
    send: list[int] = []
    item9 = next((f for f in flags if f.reason == "phq9_item9"), None)
    if item9 is not None:
        send += start_crisis_path(
            rt,
            session,
            patient=patient,
            reason="phq9_item9",
            # The reply with the crisis numbers goes by text as for an answer by text (the
            # page shows them too); a check-in that came by email has the page only.
            reply_to=patient.phone if checkin.channel == "sms" else None,
            language=patient.language,
            detail={"checkin_id": checkin.id, "source": "form", **item9.detail},
            dedupe=f"form:{link.id}",
            now=now,
        )
    elif ITEM9_KEY in instrument.keys and awaits_item9(session, checkin):
        item9_unanswered(session, checkin, now)
    if complete:
        raise_worsening(session, patient, checkin, every, now, {"source": "form"})
    return item9 is not None, send
