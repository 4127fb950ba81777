"""Inbound replies: stored before anything else, then processed once, in the order CLINICAL.md
sets: crisis language → STOP/START/HELP → an appointment reply → an answer to the open check-in
→ otherwise a follow-up for a human to read.

`receive_sms` only stores (the webhook answers at once). `process_inbound` claims the row
(processed_at set in the same transaction as every effect, so a crash leaves it unprocessed and
the sweep tries again) and returns the ids of messages to send now; the caller sends them in
its own process, so a crisis reply never waits for a dispatch cycle.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from worker.domain.answer_words import is_clear_zero
from worker.domain.instruments import Instrument, get_instrument
from worker.domain.keywords import (
    AppointmentReply,
    appointment_reply,
    classify_keyword,
    find_opt_out,
    is_cancel_word,
    is_yes,
)
from worker.domain.replies import ParsedAnswer, parse_answer
from worker.domain.risk import RiskMatch, assess_risk
from worker.domain.rules import ITEM9_KEY, evaluate_answer
from worker.services.clinical.after_answers import (
    answers_so_far,
    raise_flags,
    raise_worsening,
    store_answers,
)
from worker.services.clinical.crisis import page, start_crisis_path
from worker.services.clinical.followups import raise_followup
from worker.services.inbound import after_visit, appointment_outcome
from worker.services.outbound.send_now import queue_now
from worker.services.records import optin, visits
from worker.services.records.patients import grant_consent, has_consent, withdraw_consent
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.store.models import (
    Appointment,
    CheckIn,
    Consent,
    FormLink,
    InboundMessage,
    Message,
    Patient,
    Response,
)
from worker.store.outbox import IN_FLIGHT, WENT_OUT
from worker.store.record_status import AppointmentStatus, CheckinStatus

log = logging.getLogger(__name__)

INBOUND: Table = InboundMessage.__table__  # type: ignore[assignment]
HELP_TO_UNKNOWN_EVERY = timedelta(days=1)
# Words we cannot read go to a clinician, and the patient is told so once per this interval:
# a burst of texts (one conversation) gets one reply, a text hours later gets its own.
PASSED_ON_EVERY = timedelta(hours=1)
APPOINTMENT_REPLY_WINDOW = timedelta(days=4)
# The front-desk follow-up each appointment reply opens (a confirmation needs none).
_APPOINTMENT_FOLLOWUPS: dict[AppointmentReply, str] = {
    "reschedule": "reschedule_request",
    "cancel_request": "cancel_request",
    "late": "late_arrival",
}
# An answer that may be to a check-in whose send is not settled yet (the provider accepted it
# but our row is still `sending` or `unknown`: a worker died, a timeout) waits for it, so that it
# is stored against the right check-in; at most this long, then it is read as it stands.
HOLD_FOR_UNSETTLED_SEND = timedelta(minutes=10)


class _Later(Exception):
    """Roll this reply back, unprocessed: the sweep offers it again."""


@dataclass
class Outcome:
    inbound_id: int
    outcome: str = "none"
    send: list[int] = field(default_factory=list)
    received_at: datetime | None = None  # when the reply arrived (for the latency metric)


def receive_sms(
    rt: Runtime,
    *,
    sid: str,
    from_: str,
    to: str | None,
    body: str,
    now: datetime,
) -> tuple[int, bool]:
    """Store an inbound SMS verbatim. Returns (row id, True if new). A repeated MessageSid
    inserts nothing and returns the existing row (Twilio retries webhooks).

    One statement built once, run on a connection, not an ORM session: this runs once per
    webhook, on the path whose latency the target sets (building the statement anew and a
    session's unit of work cost a third of its CPU and buy nothing here)."""
    params = {
        "sid": sid,
        "from_": from_,
        "to": to,
        "body": body,
        "received_at": now,
    }
    with rt.engine.begin() as conn:
        new_id = conn.execute(_insert_inbound(rt.is_postgres), params).scalar()
        if new_id is not None:
            return int(new_id), True
        existing = conn.execute(select(INBOUND.c.id).where(INBOUND.c.provider_sid == sid)).scalar()
        assert existing is not None
        return int(existing), False


@functools.cache
def _insert_inbound(postgres: bool) -> Any:
    insert = postgresql.insert(INBOUND) if postgres else sqlite.insert(INBOUND)
    return (
        insert.values(
            provider_sid=bindparam("sid"),
            channel="sms",
            from_address=bindparam("from_"),
            to_address=bindparam("to"),
            body=bindparam("body"),
            received_at=bindparam("received_at"),
        )
        .on_conflict_do_nothing(index_elements=["provider_sid"])
        .returning(INBOUND.c.id)
    )


def find_patient(session: Session, phone: str) -> Patient | None:
    """The patient who texts from this number. When several share it (a family phone), the one
    most recently messaged: their reply most likely answers that message."""
    patients = list(
        session.scalars(
            select(Patient).where(Patient.phone == phone, Patient.archived_at.is_(None))
        )
    )
    if len(patients) <= 1:
        return patients[0] if patients else None
    latest = session.execute(
        select(Message.patient_id)
        .where(Message.patient_id.in_([p.id for p in patients]), Message.sent_at.is_not(None))
        .order_by(Message.sent_at.desc())
        .limit(1)
    ).scalar()
    return next((p for p in patients if p.id == latest), patients[0])


def process_inbound(rt: Runtime, inbound_id: int, now: datetime) -> Outcome:
    """Process one stored reply exactly once. Returns what happened and the messages to send."""
    result = Outcome(inbound_id)
    try:
        with session_scope(rt.sessions) as session:
            claimed = session.execute(
                update(InboundMessage)
                .where(InboundMessage.id == inbound_id, InboundMessage.processed_at.is_(None))
                .values(processed_at=now)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                result.outcome = "already_processed"
                return result
            inbound = session.get(InboundMessage, inbound_id)
            assert inbound is not None
            result.received_at = inbound.received_at
            patient = find_patient(session, inbound.from_address)
            if patient is not None:
                inbound.patient_id = patient.id
            _Processor(rt, session, inbound, patient, now, result).run()
            inbound.outcome = result.outcome[:60]
    except _Later:
        log.info("inbound %d: waits for the check-in it may answer to be settled", inbound_id)
        return Outcome(inbound_id, "waiting_for_send")
    log.info("inbound %d processed: %s", inbound_id, result.outcome)
    return result


class _Processor:
    def __init__(
        self,
        rt: Runtime,
        session: Session,
        inbound: InboundMessage,
        patient: Patient | None,
        now: datetime,
        result: Outcome,
    ) -> None:
        self.rt, self.session, self.inbound, self.patient = rt, session, inbound, patient
        self.now, self.result = now, result
        self.lang = patient.language if patient is not None else "en"
        self.crisis = False
        self.possible_risk = False

    # -- plumbing ------------------------------------------------------------------------

    def reply(self, template: str, purpose: str, context: dict[str, Any] | None = None) -> None:
        """A reply by SMS to whoever wrote, exempt from quiet hours (they just wrote to us)."""
        if (
            template in ("ack", "clarify", "passed_on") or template.startswith("appointment_")
        ) and self.opted_out():
            # After a STOP only its confirmation goes (and HELP, and a crisis reply): an answer
            # that arrives after it, or overtook it on the way, is stored without a reply.
            return
        mid = queue_now(
            self.session,
            now=self.now,
            dedupe_key=f"in:{self.inbound.id}:{purpose}",
            template=template,
            kind="reply",
            channel="sms",
            patient_id=self.patient.id if self.patient else None,
            language=self.lang,
            to_address=self.inbound.from_address,
            context=context,
        )
        if mid is not None:
            self.result.send.append(mid)

    def replied_since(self, template: str, since: datetime, *to: ColumnElement[bool]) -> bool:
        """A reply from `template` was queued since `since` to whoever `to` selects: for the
        replies sent at most once in an interval."""
        found = self.session.scalar(
            select(Message.id)
            .where(Message.template == template, Message.created_at >= since, *to)
            .limit(1)
        )
        return found is not None

    def opted_out(self) -> bool:
        """The patient withdrew SMS consent (STOP, or a clinician recorded it) and has not
        given it again."""
        if self.patient is None or has_consent(self.session, self.patient.id, "sms"):
            return False
        withdrawn = self.session.scalar(
            select(Consent.id)
            .where(
                Consent.patient_id == self.patient.id,
                Consent.channel == "sms",
                Consent.withdrawn_at.is_not(None),
            )
            .limit(1)
        )
        return withdrawn is not None

    def followup(self, reason: str, severity: str, **detail: Any) -> int:
        item, _ = raise_followup(
            self.session,
            patient_id=self.patient.id if self.patient else None,
            reason=reason,
            severity=severity,
            detail={"inbound_id": self.inbound.id, **detail},
            now=self.now,
        )
        return item.id

    def crisis_path(self, reason: str, detail: dict[str, Any]) -> None:
        """The urgent path for this reply: crisis reply, urgent follow-up, page."""
        self.crisis = True
        self.result.send += start_crisis_path(
            self.rt,
            self.session,
            patient=self.patient,
            reason=reason,
            reply_to=self.inbound.from_address,
            language=self.lang,
            detail=detail,
            dedupe=f"in:{self.inbound.id}",
            now=self.now,
        )

    def item9_path(self, detail: dict[str, Any]) -> None:
        """PHQ-9 item 9 not a clear 0: the crisis path, or, when this reply already started it
        (crisis words with the answer), its own urgent follow-up beside it."""
        if self.crisis:
            self.followup("phq9_item9", "urgent", **detail)
        else:
            self.crisis_path("phq9_item9", {"inbound_id": self.inbound.id, **detail})

    def done(self, outcome: str) -> None:
        prefix = "crisis+" if self.crisis else ("possible_risk+" if self.possible_risk else "")
        self.result.outcome = prefix + outcome

    # -- the pipeline ----------------------------------------------------------------------

    def run(self) -> None:
        body = self.inbound.body or ""
        risk = assess_risk(body)
        if risk is not None:
            self.risk_language(risk)
        if self.patient is None:
            self.unknown_sender()
            return
        keyword = classify_keyword(body)
        if risk is not None and keyword is None and find_opt_out(body):
            # "STOP. I want to die": the crisis path above and the opt-out both.
            keyword = "opt_out"
        opted_out = not has_consent(self.session, self.patient.id, "sms")
        if keyword == "opt_in" or (keyword is None and opted_out and is_yes(body)):
            self.opt_in(opted_out)
            return
        if keyword == "opt_out":
            self.opt_out(body)
            return
        if risk is not None:
            # Risk language is never read as an answer or an appointment reply: no number is
            # taken out of it, no clarification and no thank-you follow it. The follow-up keeps
            # the text (inbound_id) for the clinician.
            self.done("free_text")
            return
        if keyword == "help":
            self.reply("help", "help")
            self.done("help")
            return
        if self.appointment(body):
            return
        if self.answer(body):
            return
        if self.crisis:
            # The urgent follow-up already puts this text in front of a clinician.
            self.done("free_text")
            return
        self.followup("unparseable_reply", "routine", text_kept_in_inbound=True)
        self.passed_on()
        self.done("unparseable")

    def passed_on(self) -> None:
        """Tell a patient whose words went to a clinician that they did, and that this line is
        not watched around the clock (988, 911): the crisis detector misses some new phrasings
        (docs/risk-language.md), and such a text must not be met with silence. Once per
        PASSED_ON_EVERY; never after a STOP (see reply)."""
        assert self.patient is not None
        since = self.now - PASSED_ON_EVERY
        if not self.replied_since("passed_on", since, Message.patient_id == self.patient.id):
            self.reply("passed_on", "passed_on")

    def risk_language(self, risk: RiskMatch) -> None:
        """Crisis tier: the urgent path. Possible risk: a high follow-up with the evidence, a
        short reply naming 988 and the clinic's phone, a page only if the clinic asks for it."""
        detail = {
            "inbound_id": self.inbound.id,
            "matched": risk.phrase,
            "category": risk.category,
            "rule": risk.canonical,
            "language": risk.language,
        }
        if risk.tier == "crisis":
            self.crisis_path("crisis_language", detail)
            return
        self.possible_risk = True
        item, created = raise_followup(
            self.session,
            patient_id=self.patient.id if self.patient else None,
            reason="possible_risk",
            severity="high",
            detail=detail,
            now=self.now,
        )
        self.reply("possible_risk_reply", "possible_risk")
        if created and self.rt.settings.page_on_possible_risk:
            self.result.send += page(self.rt, self.session, item, self.now)
        log.warning("possible risk language: follow-up %d", item.id)

    def unknown_sender(self) -> None:
        # Nothing is attached to any patient; the HELP text at most once a day per number.
        if self.crisis or self.possible_risk:
            self.done("unknown_sender")
            return
        if not self.replied_since(
            "help",
            self.now - HELP_TO_UNKNOWN_EVERY,
            Message.to_address == self.inbound.from_address,
            Message.patient_id.is_(None),
        ):
            self.reply("help", "help")
        self.done("unknown_sender")

    def opt_out(self, body: str) -> None:
        assert self.patient is not None
        if has_consent(self.session, self.patient.id, "sms"):
            withdraw_consent(
                self.session,
                self.patient.id,
                "sms",
                now=self.now,
                source=f"SMS keyword (inbound {self.inbound.id})",
                actor="patient",
            )
            # Exactly one confirmation: only when this message changed the consent.
            self.reply("stop_confirmation", "stop")
            cancel = is_cancel_word(body)  # CANCEL or "cancelar": maybe meant the appointment
            self.followup(
                "opt_out",
                "routine",
                channel="sms",
                check_intent=cancel,
                note=(
                    "Patient replied CANCEL (or cancelar): check whether they meant an appointment."
                    if cancel
                    else "Patient opted out of SMS: reach them another way if needed."
                ),
            )
        self.done("opt_out")

    def opt_in(self, was_opted_out: bool) -> None:
        assert self.patient is not None
        if was_opted_out and self.patient.phone:
            grant_consent(
                self.session,
                self.patient.id,
                "sms",
                now=self.now,
                source=f"SMS keyword (inbound {self.inbound.id})",
                actor="patient",
                confirm_optin=False,
            )
            if self.rt.settings.optin_confirmation:
                # The grant's opt-in confirmation is the answer to START (one text, not two).
                mid = optin.confirm_start(
                    self.session, self.patient.id, now=self.now, to=self.inbound.from_address
                )
                if mid is not None:
                    self.result.send.append(mid)
                self.done("opt_in")
                return
        self.reply("start_confirmation", "start")
        self.done("opt_in")

    def appointment(self, body: str) -> bool:
        assert self.patient is not None
        verdict = appointment_reply(body)
        if verdict is None or (is_yes(body) and self.awaiting_item9()):
            # "yes" while PHQ-9 item 9 waits for its answer is read as that answer, not as a
            # confirmation of an appointment reminded the same week ("C", "R", "X" still are).
            return False
        # The next booked appointment that we have reminded the patient of recently.
        reminded = self.session.scalar(
            select(Appointment)
            .join(Message, Message.appointment_id == Appointment.id)
            .where(
                Appointment.patient_id == self.patient.id,
                Appointment.status == AppointmentStatus.BOOKED,
                Appointment.starts_at > self.now,
                Message.kind == "reminder",
                Message.status.in_(WENT_OUT),
                Message.sent_at >= self.now - APPOINTMENT_REPLY_WINDOW,
            )
            .order_by(Appointment.starts_at)
            .limit(1)
        )
        if reminded is None:
            return self.rebook_missed_visit(verdict)
        context: dict[str, Any] = {}
        via = {"via": "sms", "inbound_id": self.inbound.id}
        if verdict == "confirm":
            appointment_outcome.confirm(self.session, reminded, now=self.now, via=via)
            context["when"] = appointment_outcome.local_when(reminded, self.patient.tz, self.lang)
        elif verdict == "reschedule":
            # The same request a reminder email's "request a new time" button makes.
            appointment_outcome.ask_for_new_time(self.session, reminded, now=self.now, via=via)
        else:
            detail = {"appointment_id": reminded.id, "starts_at": reminded.starts_at.isoformat()}
            self.followup(_APPOINTMENT_FOLLOWUPS[verdict], "routine", **detail)
        # The outcome in the patient's words ("Confirmed: Tue Mar 10, 2:00 PM."), not a generic ack.
        self.reply(f"appointment_{verdict}", "ack", context)
        self.done(f"appointment_{verdict}")
        return True

    def rebook_missed_visit(self, verdict: AppointmentReply) -> bool:
        """ "R" after the "we missed you" text: the front desk finds a new time."""
        assert self.patient is not None
        if verdict != "reschedule":
            return False
        missed = visits.missed_visit_texted(self.session, self.patient.id, self.now)
        if missed is None:
            return False
        self.followup("reschedule_request", "routine", appointment_id=missed, after="no_show")
        self.reply("appointment_reschedule", "ack")
        self.done("appointment_reschedule")
        return True

    # -- check-in answers ------------------------------------------------------------------

    def open_checkin(self) -> tuple[CheckIn | None, bool]:
        """The check-in this reply answers, and whether it is late (after its window)."""
        assert self.patient is not None
        # A check-in sent as a form link is answered on the form, never by a text: a number
        # texted meanwhile answers the latest check-in that asked for one.
        by_form = (
            select(FormLink.id)
            .join(Message, Message.id == FormLink.message_id)
            .where(Message.checkin_id == CheckIn.id)
        )
        latest = self.session.scalar(
            select(CheckIn)
            .where(CheckIn.patient_id == self.patient.id, ~by_form.exists())
            .order_by(CheckIn.sent_at.desc(), CheckIn.id.desc())
            .limit(1)
        )
        if latest is None or latest.status == CheckinStatus.ANSWERED:
            return None, False
        late = latest.window_closes_at <= self.now or latest.status in (CheckinStatus.EXPIRED,)
        return latest, late

    def awaiting_item9(self) -> bool:
        """The open check-in's current question is PHQ-9 item 9, its window still open."""
        checkin, late = self.open_checkin()
        if checkin is None or late or checkin.instrument != "phq9":
            return False
        keys = get_instrument("phq9").keys
        return keys[min(checkin.item_index, len(keys) - 1)] == ITEM9_KEY

    def checkin_unsettled(self) -> bool:
        """A check-in SMS to this patient that the provider may have (and the patient may be
        answering) while our row does not say so yet."""
        assert self.patient is not None
        if self.now - self.inbound.received_at >= HOLD_FOR_UNSETTLED_SEND:
            return False
        return (
            self.session.scalar(
                select(Message.id)
                .where(
                    Message.patient_id == self.patient.id,
                    Message.kind == "checkin",
                    Message.channel == "sms",
                    Message.status.in_(IN_FLIGHT),
                )
                .limit(1)
            )
            is not None
        )

    def answer(self, body: str) -> bool:
        assert self.patient is not None
        if not self.crisis and self.checkin_unsettled():
            raise _Later
        checkin, late = self.open_checkin()
        if checkin is None:
            return False
        visit = after_visit.of_checkin(self.session, checkin)
        instrument = get_instrument(checkin.instrument, self.lang)
        if instrument.conversational:
            index = min(checkin.item_index, len(instrument.items) - 1)
            items = [instrument.items[index]]
        else:
            items = list(instrument.items)
        parsed = parse_answer(
            body,
            [it.key for it in items],
            min(it.minimum for it in items),
            max(it.maximum for it in items),
            answer_labels=instrument.answer_labels,
            frequency_words=instrument.answer_labels is not None,
        )
        if [it.key for it in items] == [ITEM9_KEY]:
            value = item9_value(body, parsed)
            if value is None:
                self.item9_unclear(checkin, parsed)
                return True
            parsed = ParsedAnswer({ITEM9_KEY: value}, True, None, parsed.found)
        if visit is not None and not self.crisis:
            self.after_visit_reply(checkin, instrument, visit, parsed, body, late)
            return True
        if parsed.problem is not None or not parsed.values:
            if self.crisis:
                # Crisis words with no answer in them: the crisis reply and the urgent follow-up
                # have it; "please reply with a number" would be the wrong thing to send next.
                return False
            if not checkin.clarified and not late:
                checkin.clarified = True
                self.reply(
                    "clarify",
                    "clarify",
                    {
                        "low": items[0].minimum,
                        "high": items[0].maximum,
                        "numbers": len(items),
                    },
                )
                self.done(f"clarify_{parsed.problem or 'no_numbers'}")
                return True
            self.followup(
                "unparseable_reply",
                "routine",
                checkin_id=checkin.id,
                problem=parsed.problem or "no_numbers",
            )
            self.done("unparseable_after_clarification")
            return True
        self.store(checkin, instrument, parsed.values, partial=not parsed.complete, late=late)
        return True

    def after_visit_reply(
        self,
        checkin: CheckIn,
        instrument: Instrument,
        visit: after_visit.VisitCheckin,
        parsed: ParsedAnswer,
        body: str,
        late: bool,
    ) -> None:
        """The answer to a day-after-visit check-in: a number is stored as a mood answer; a
        low one, or any words, also goes to a clinician (the words stay in the inbound row)."""
        value = parsed.values.get(after_visit.INSTRUMENT) if parsed.problem is None else None
        words = after_visit.has_words(body)
        if after_visit.needs_clinician(value, words, visit.low):
            self.followup(
                "after_visit",
                "routine",
                checkin_id=checkin.id,
                appointment_id=visit.appointment_id,
                value=value,
                low=visit.low,
                words=words,
                text_kept_in_inbound=words,
            )
        if value is not None:
            self.store(
                checkin, instrument, {after_visit.INSTRUMENT: value}, partial=False, late=late
            )
            return
        checkin.status = CheckinStatus.ANSWERED
        checkin.answered_at = self.now
        self.reply("ack", "ack")
        self.done("after_visit_words")

    def store(
        self,
        checkin: CheckIn,
        instrument: Instrument,
        values: dict[str, int],
        *,
        partial: bool,
        late: bool,
    ) -> None:
        answers = store_answers(
            self.session,
            checkin,
            values,
            now=self.now,
            source="sms",
            partial=partial,
            late=late,
            inbound_id=self.inbound.id,
        )
        flags = evaluate_answer(checkin.instrument, answers)
        if instrument.conversational:
            self.advance(checkin, instrument, answers, flags)
            return
        # "mood 4" then "pain 7": the second message completes the first.
        partial = not all(it.key in answers for it in instrument.items)
        if not partial:
            self.session.execute(
                update(Response).where(Response.checkin_id == checkin.id).values(partial=False)
            )
        checkin.status = CheckinStatus.PARTIAL if partial else CheckinStatus.ANSWERED
        checkin.answered_at = self.now
        self.apply_flags(checkin, flags, answers)
        self.worsening(checkin, answers)
        self.reply("ack", "ack")
        self.done("answer_late" if late else ("answer_partial" if partial else "answer"))

    def answers_so_far(self, checkin: CheckIn) -> dict[str, int]:
        return answers_so_far(self.session, checkin.id)

    def advance(
        self,
        checkin: CheckIn,
        instrument: Instrument,
        answers: dict[str, int],
        flags: list[Any],
    ) -> None:
        """One questionnaire item answered: a positive PHQ-9 item 9 stops it and starts the
        crisis path; otherwise the next item is sent, or the questionnaire is complete."""
        item9 = [f for f in flags if f.reason == "phq9_item9"]
        if item9:
            checkin.status = CheckinStatus.PARTIAL
            checkin.answered_at = self.now
            self.mark_partial(checkin)
            self.item9_path({"checkin_id": checkin.id, **item9[0].detail})
            self.done("questionnaire_stopped_item9")
            return
        next_index = max(checkin.item_index, 0) + 1
        keys = [it.key for it in instrument.items]
        answered = [k for k in keys if k in answers]
        if next_index < len(keys) and len(answered) < len(keys):
            checkin.item_index = next_index
            checkin.window_closes_at = max(
                checkin.window_closes_at,
                self.now + timedelta(hours=self.rt.settings.checkin_reply_window_hours),
            )
            assert self.patient is not None
            mid = queue_now(
                self.session,
                now=self.now,
                dedupe_key=f"ci:{checkin.id}:item:{next_index}",
                template="checkin_item",
                kind="checkin",
                channel=checkin.channel,
                patient_id=self.patient.id,
                language=self.lang,
                instrument=checkin.instrument,
                checkin_id=checkin.id,
                context={"instrument": checkin.instrument, "item_index": next_index},
            )
            if mid is not None:
                self.result.send.append(mid)
            self.done("questionnaire_next_item")
            return
        checkin.status = CheckinStatus.ANSWERED
        checkin.answered_at = self.now
        self.apply_flags(checkin, flags, answers)
        self.worsening(checkin, answers)
        self.reply("ack", "ack")
        self.done("questionnaire_complete")

    def item9_unclear(self, checkin: CheckIn, parsed: ParsedAnswer) -> None:
        """A reply to PHQ-9 item 9 that is not a clear 0 ("yes", "sometimes", a question): no
        value is stored (none can be read for sure), the questionnaire stops, and the crisis
        path starts as for an answer of 1 or more (CLINICAL.md)."""
        checkin.status = CheckinStatus.PARTIAL
        checkin.answered_at = self.now
        self.mark_partial(checkin)
        detail = {
            "inbound_id": self.inbound.id,
            "checkin_id": checkin.id,
            "instrument": "phq9",
            "item": ITEM9_KEY,
            "value": None,
            "answer": "not_a_clear_0",
            "problem": parsed.problem,
            "found": list(parsed.found),
            "loinc": get_instrument("phq9").item(ITEM9_KEY).loinc,
            "text_kept_in_inbound": True,
        }
        self.item9_path(detail)
        self.done("questionnaire_stopped_item9")

    def mark_partial(self, checkin: CheckIn) -> None:
        self.session.execute(
            update(Response).where(Response.checkin_id == checkin.id).values(partial=True)
        )

    def apply_flags(self, checkin: CheckIn, flags: list[Any], answers: dict[str, int]) -> None:
        assert self.patient is not None
        raise_flags(
            self.session, self.patient, checkin, flags, self.now, {"inbound_id": self.inbound.id}
        )

    def worsening(self, checkin: CheckIn, answers: dict[str, int]) -> None:
        assert self.patient is not None
        raise_worsening(
            self.session, self.patient, checkin, answers, self.now, {"inbound_id": self.inbound.id}
        )


def item9_value(body: str, parsed: ParsedAnswer) -> int | None:
    """The value to store for a reply to PHQ-9 item 9, or None when it is not sure: 0 only for
    a clear 0 ("0", "no", "never", "not at all", "nunca"...); 1-3 when read as such ("2",
    "every day"); anything else, including "0 but...", is None."""
    if is_clear_zero(body):
        return 0
    value = parsed.values.get(ITEM9_KEY)
    if parsed.problem is None and value is not None and value >= 1:
        return value
    return None


def unprocessed(rt: Runtime, now: datetime, older_than: timedelta, limit: int = 100) -> list[int]:
    """Stored replies nobody processed (the broker was down, a worker died): the sweep's work."""
    with session_scope(rt.sessions) as session:
        return list(
            session.scalars(
                select(InboundMessage.id)
                .where(
                    InboundMessage.processed_at.is_(None),
                    InboundMessage.received_at <= now - older_than,
                )
                .order_by(InboundMessage.received_at)
                .limit(limit)
            )
        )
