"""PHQ-9 item 9 is never lost: by SMS, one item a message, on real rows (SQLite and PostgreSQL)
and a fixed clock. Anything to item 9 but a clear 0 starts the crisis path and stops the
questionnaire; a clear 0 goes on; words are answers for every item; item 9 left unanswered
when the window closes is a high follow-up, once."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import make_settings
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.services.clinical.expiry import expire_checkins
from worker.services.inbound.receive import Outcome, process_inbound, receive_sms
from worker.services.outbound.send_now import queue_now, send_now
from worker.services.records.appointments import add_appointment
from worker.services.records.patients import add_patient
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import session_scope
from worker.store.models import Appointment, CheckIn, FollowUp, Message, Response

PHONE = "+12125553101"
ONCALL = "+12125559911"
T0 = datetime(2027, 3, 10, 14, 0, tzinfo=UTC)
_sids = itertools.count(1)


@pytest.fixture
def rt(db_url: str) -> Iterator[Runtime]:
    runtime = build_runtime(
        make_settings(db_url, oncall_phone=ONCALL),
        channels=Channels(ConsoleSms(io.StringIO()), ConsoleEmail(io.StringIO())),
    )
    yield runtime
    runtime.close()


def reply(rt: Runtime, body: str, at: datetime) -> Outcome:
    row, _ = receive_sms(rt, sid=f"SM{next(_sids):032d}", from_=PHONE, to=None, body=body, now=at)
    outcome = process_inbound(rt, row, at)
    send_now(rt, outcome.send, at)
    return outcome


def start_phq9(rt: Runtime, language: str = "en") -> None:
    """A patient and the PHQ-9's first item, sent at T0 (the check-in opens when it is sent)."""
    with session_scope(rt.sessions) as session:
        patient = add_patient(
            session,
            questionnaire_mode="sms",  # the one-item-per-text conversation
            now=T0,
            name="Pat Doe",
            tz="America/New_York",
            channel="sms",
            phone=PHONE,
            consent=["sms"],
            confirm_optin=False,  # no opt-in text: not what this test counts
            send_window="00:00-24:00",
            language=language,
        )
        mid = queue_now(
            session,
            now=T0,
            dedupe_key="test:phq9",
            template="checkin_item",
            kind="checkin",
            channel="sms",
            patient_id=patient.id,
            language=language,
            instrument="phq9",
            context={"instrument": "phq9", "item_index": 0},
            urgent=False,
        )
        assert mid is not None
    assert send_now(rt, [mid], T0) == {"sent": 1}


def to_item9(rt: Runtime, language: str = "en") -> datetime:
    """Items 1-8 answered a minute apart; returns when item 9 was sent."""
    start_phq9(rt, language)
    at = T0
    for answer in ["1", "0", "1", "0", "1", "0", "1", "0"]:
        at += timedelta(minutes=1)
        assert reply(rt, answer, at).outcome == "questionnaire_next_item"
    return at


def rows(rt: Runtime) -> tuple[CheckIn, dict[str, int], list[FollowUp], list[Message]]:
    with session_scope(rt.sessions) as session:
        [checkin] = session.scalars(select(CheckIn)).all()
        answers = {r.item: r.value for r in session.scalars(select(Response))}
        items = list(session.scalars(select(FollowUp).order_by(FollowUp.id)))
        messages = list(session.scalars(select(Message).order_by(Message.id)))
        session.expunge_all()
    return checkin, answers, items, messages


# Words that are not a clear 0; the first five are the issue's own.
UNSURE = [
    "yes",
    "sometimes",
    "every day",
    "occasionally",
    "a little",
    "kind of",
    "what does that question mean?",
    "idk",
    "0 but I think about it",
    "0 1",
    "5",
    "?",
]
UNSURE_ES = ["sí", "si", "a veces", "no sé", "todos los días"]


@pytest.mark.parametrize(
    ("language", "text"), [("en", t) for t in UNSURE] + [("es", t) for t in UNSURE_ES]
)
def test_anything_but_a_clear_0_to_item_9_is_the_crisis_path(
    rt: Runtime, language: str, text: str
) -> None:
    at = to_item9(rt, language) + timedelta(minutes=1)
    outcome = reply(rt, text, at)
    assert outcome.outcome == "crisis+questionnaire_stopped_item9"
    checkin, answers, items, messages = rows(rt)
    assert checkin.status == "partial"
    [urgent] = [f for f in items if f.severity == "urgent"]
    assert (urgent.reason, urgent.status) == ("phq9_item9", "open")
    # A word that is an answer ("sometimes" = 1) is stored; one that is not, is not guessed.
    readable = {"sometimes": 1, "every day": 3, "a veces": 1, "todos los días": 3}
    assert answers.get("phq9_9") == readable.get(text)
    late = [m for m in messages if m.created_at == at]
    assert {(m.template, m.to_address, m.status) for m in late} == {
        ("crisis_reply", PHONE, "sent"),
        ("oncall_page", ONCALL, "sent"),
    }, "the crisis reply and the page, and no thank-you or clarifying question"
    assert urgent.detail["escalation"][0]["step"] == "oncall"


ZERO = ["0", "no", "No.", "not at all", "never", "none", "Nope", "No, not at all. Thanks!"]
ZERO_ES = ["nunca", "para nada", "ningún día", "Ningun dia", "no, gracias", "cero"]


@pytest.mark.parametrize(
    ("language", "text"), [("en", t) for t in ZERO] + [("es", t) for t in ZERO_ES]
)
def test_a_clear_0_to_item_9_completes_the_questionnaire(
    rt: Runtime, language: str, text: str
) -> None:
    at = to_item9(rt, language) + timedelta(minutes=1)
    assert reply(rt, text, at).outcome == "questionnaire_complete"
    checkin, answers, items, messages = rows(rt)
    assert checkin.status == "answered"
    assert answers["phq9_9"] == 0 and sum(answers.values()) == 4
    assert not [f for f in items if f.severity == "urgent"]
    assert [m.template for m in messages if m.created_at == at] == ["ack"]


@pytest.mark.parametrize(
    ("language", "words", "values"),
    [
        (
            "en",
            [
                "Not at all",
                "never",
                "a few days",
                "some days",
                "most days",
                "more than half the days",
                "every day",
                "all the time",
            ],
            [0, 0, 1, 1, 2, 2, 3, 3],
        ),
        (
            "es",
            [
                "nunca",
                "Para nada",
                "varios dias",
                "algunos días",
                "MÁS DE LA MITAD DE LOS DÍAS",
                "la mayoria de los dias",
                "casi todos los días",
                "todos los dias",
            ],
            [0, 0, 1, 1, 2, 2, 3, 3],
        ),
    ],
)
def test_words_answer_every_item(
    rt: Runtime, language: str, words: list[str], values: list[int]
) -> None:
    start_phq9(rt, language)
    at = T0
    for text in words:
        at += timedelta(minutes=1)
        assert reply(rt, text, at).outcome == "questionnaire_next_item", text
    _, answers, _, _ = rows(rt)
    assert [answers[f"phq9_{n}"] for n in range(1, 9)] == values


def test_a_negated_frequency_is_asked_again_not_guessed(rt: Runtime) -> None:
    start_phq9(rt)
    assert reply(rt, "not every day", T0 + timedelta(minutes=1)).outcome == "clarify_ambiguous"
    _, answers, _, messages = rows(rt)
    assert answers == {} and messages[-1].template == "clarify"


def test_item_9_unanswered_when_the_window_closes_is_one_high_followup(rt: Runtime) -> None:
    sent = to_item9(rt)
    closes = sent + timedelta(hours=rt.settings.checkin_reply_window_hours)
    assert expire_checkins(rt, closes - timedelta(minutes=1)) == 0
    assert [f.reason for f in rows(rt)[2]] == []
    assert expire_checkins(rt, closes) == 1
    assert expire_checkins(rt, closes + timedelta(hours=1)) == 0
    checkin, answers, items, messages = rows(rt)
    assert checkin.status == "partial" and "phq9_9" not in answers
    [item] = items
    assert (item.reason, item.severity, item.status) == ("phq9_item9_unanswered", "high", "open")
    [evidence] = item.detail["evidence"]
    prompt = [m for m in messages if m.dedupe_key == f"ci:{checkin.id}:item:8"]
    assert evidence["prompt_message_id"] == prompt[0].id and evidence["prompt_status"] == "sent"
    assert evidence["checkin_id"] == checkin.id and evidence["item"] == "phq9_9"


def test_a_questionnaire_quiet_before_item_9_raises_no_item_9_followup(rt: Runtime) -> None:
    start_phq9(rt)
    reply(rt, "1", T0 + timedelta(minutes=1))
    assert expire_checkins(rt, T0 + timedelta(days=2)) == 1
    checkin, _, items, _ = rows(rt)
    assert checkin.status == "partial"
    assert "phq9_item9_unanswered" not in [f.reason for f in items]


def remind(rt: Runtime, at: datetime) -> int:
    """An appointment in two days and its reminder, sent at `at`. Returns the appointment id."""
    with session_scope(rt.sessions) as session:
        [patient_id] = session.scalars(select(CheckIn.patient_id)).all() or [None]
        if patient_id is None:
            patient_id = add_patient(
                session,
                questionnaire_mode="sms",  # the one-item-per-text conversation
                now=at,
                name="Pat Doe",
                tz="America/New_York",
                channel="sms",
                phone=PHONE,
                consent=["sms"],
                confirm_optin=False,  # no opt-in text: not what this test counts
                send_window="00:00-24:00",
            ).id
        appointment = add_appointment(
            session, patient_id, now=at, kind="consult", at="2027-03-12T10:00"
        )
        mid = queue_now(
            session,
            now=at,
            dedupe_key="test:reminder",
            template="reminder_consult",
            kind="reminder",
            channel="sms",
            patient_id=patient_id,
            appointment_id=appointment.id,
            urgent=False,
        )
        assert mid is not None
        row = session.get(Message, mid)
        assert row is not None
        row.appointment_version = appointment.version  # as the planner writes it
        appointment_id = appointment.id
    assert send_now(rt, [mid], at) == {"sent": 1}
    return appointment_id


def confirmed(rt: Runtime, appointment_id: int) -> bool:
    with session_scope(rt.sessions) as session:
        appointment = session.get(Appointment, appointment_id)
        assert appointment is not None
        return appointment.confirmed_at is not None


def test_yes_while_item_9_waits_is_item_9_not_an_appointment_confirmation(rt: Runtime) -> None:
    at = to_item9(rt)
    appointment = remind(rt, at)
    outcome = reply(rt, "yes", at + timedelta(minutes=1))
    assert outcome.outcome == "crisis+questionnaire_stopped_item9"
    assert not confirmed(rt, appointment)


def test_yes_to_a_reminder_with_no_item_9_waiting_confirms(rt: Runtime) -> None:
    appointment = remind(rt, T0)
    assert reply(rt, "yes", T0 + timedelta(minutes=1)).outcome == "appointment_confirm"
    assert confirmed(rt, appointment)


def test_c_while_item_9_waits_still_confirms_the_appointment(rt: Runtime) -> None:
    at = to_item9(rt)
    appointment = remind(rt, at)
    assert reply(rt, "C", at + timedelta(minutes=1)).outcome == "appointment_confirm"
    assert confirmed(rt, appointment)
    checkin, answers, _, _ = rows(rt)
    assert checkin.status == "open" and "phq9_9" not in answers  # item 9 still waits


def email_phq9(rt: Runtime, answered: list[int]) -> CheckIn:
    """A PHQ-9 sent by email at T0 (all items in one message) with items 1..len(answered)
    answered, as the one-click links record them."""
    with session_scope(rt.sessions) as session:
        patient = add_patient(
            session,
            questionnaire_mode="sms",  # the one-item-per-text conversation
            now=T0,
            name="Pat Doe",
            tz="America/New_York",
            channel="email",
            email="pat.doe@mail.example",
            consent=["email"],
            confirm_optin=False,  # no opt-in text: not what this test counts
            send_window="00:00-24:00",
        )
        mid = queue_now(
            session,
            now=T0,
            dedupe_key="test:phq9-email",
            template="checkin_item",
            kind="checkin",
            channel="email",
            patient_id=patient.id,
            instrument="phq9",
            context={"instrument": "phq9", "item_index": 0},
            urgent=False,
        )
        assert mid is not None
    assert send_now(rt, [mid], T0) == {"sent": 1}
    with session_scope(rt.sessions) as session:
        [checkin] = session.scalars(select(CheckIn)).all()
        for n, value in enumerate(answered, start=1):
            session.add(
                Response(
                    checkin_id=checkin.id,
                    patient_id=checkin.patient_id,
                    instrument="phq9",
                    item=f"phq9_{n}",
                    value=value,
                    answered_at=T0 + timedelta(minutes=n),
                    source="email",
                )
            )
        session.expunge(checkin)
    return checkin


@pytest.mark.parametrize(("answered", "raised"), [([1] * 8, True), ([], False)])
def test_by_email_item_9_left_out_of_an_answered_form_is_a_high_followup(
    rt: Runtime, answered: list[int], raised: bool
) -> None:
    checkin = email_phq9(rt, answered)
    assert expire_checkins(rt, checkin.window_closes_at) == 1
    reasons = [f.reason for f in rows(rt)[2]]
    assert ("phq9_item9_unanswered" in reasons) == raised
