"""Questionnaires by private link, on real rows (SQLite and PostgreSQL) and a fixed clock: the
SMS carries an opaque token whose hash only is stored; opening the form records nothing; a
submission records what was answered, once; an expired link records nothing; the date-of-birth
check refuses a wrong date and locks after the limit; PHQ-9 item 9 >= 1 starts the crisis
path; a partial form keeps its answers and item 9 left blank is a high follow-up."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import make_settings
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.domain.forms import DOB_ATTEMPTS, TOKEN_LENGTH, token_hash
from worker.domain.sms_text import encoding, segments
from worker.services.inbound.forms import FormPage, open_form, submit_form
from worker.services.outbound.send_now import queue_now, send_now
from worker.services.records.patients import add_patient
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import session_scope
from worker.store.models import CheckIn, FollowUp, FormLink, Message, Patient, Response

PHONE = "+12125553101"
ONCALL = "+12125559911"
T0 = datetime(2027, 3, 10, 14, 0, tzinfo=UTC)
BIRTH = date(1985, 3, 27)
PHQ9_ALL = {f"phq9_{n}": "1" for n in range(1, 9)} | {"phq9_9": "0"}


def runtime(db_url: str, **overrides: object) -> Runtime:
    return build_runtime(
        make_settings(db_url, oncall_phone=ONCALL, **overrides),
        channels=Channels(ConsoleSms(io.StringIO()), ConsoleEmail(io.StringIO())),
    )


@pytest.fixture
def rt(db_url: str) -> Iterator[Runtime]:
    r = runtime(db_url)
    yield r
    r.close()


def send_questionnaire(
    rt: Runtime,
    instrument: str = "phq9",
    *,
    language: str = "en",
    mode: str = "link",
    channel: str = "sms",
) -> str:
    """A patient and a questionnaire sent at T0; returns the body the patient received."""
    with session_scope(rt.sessions) as session:
        patient = add_patient(
            session,
            now=T0,
            name="Pat Doe",
            tz="America/New_York",
            channel=channel,
            phone=PHONE,
            email="pat@example.org",
            consent=[channel],
            confirm_optin=False,  # no opt-in text: not what this test counts
            send_window="00:00-24:00",
            language=language,
            questionnaire_mode=mode,
        )
        patient.birth_date = BIRTH
        mid = queue_now(
            session,
            now=T0,
            dedupe_key=f"test:{instrument}",
            template="checkin_item",
            kind="checkin",
            channel=channel,
            patient_id=patient.id,
            language=language,
            instrument=instrument,
            context={"instrument": instrument, "item_index": 0},
            urgent=False,
        )
        assert mid is not None
    assert send_now(rt, [mid], T0) == {"sent": 1}
    with session_scope(rt.sessions) as session:
        body = session.scalar(select(Message.body).where(Message.id == mid))
    assert body is not None
    return body


def token_of(body: str) -> str:
    match = re.search(r"http://127\.0\.0\.1:8000/q/([A-Za-z0-9_-]+)", body)
    assert match, body
    return match.group(1)


def answers(rt: Runtime) -> dict[str, int]:
    with session_scope(rt.sessions) as session:
        return {r.item: r.value for r in session.scalars(select(Response).order_by(Response.id))}


def followups(rt: Runtime) -> list[tuple[str, str]]:
    with session_scope(rt.sessions) as session:
        return [(f.reason, f.severity) for f in session.scalars(select(FollowUp))]


def checkin_status(rt: Runtime) -> str:
    with session_scope(rt.sessions) as session:
        [checkin] = session.scalars(select(CheckIn)).all()
        return checkin.status


def submit(rt: Runtime, token: str, form: dict[str, str], at: datetime) -> FormPage:
    page = submit_form(rt, token, form, at)
    if page.send:
        send_now(rt, list(page.send), at)
    return page


def test_the_sms_is_one_gsm7_segment_with_an_opaque_token_whose_hash_only_is_stored(
    rt: Runtime,
) -> None:
    body = send_questionnaire(rt)
    token = token_of(body)
    assert body.startswith("Riverside Pain & Wellness: your check-in is ready, 2 min: ")
    assert encoding(body) == "GSM-7" and segments(body) == 1, body
    # 128 random bits; nothing readable in it, and not stored as such anywhere.
    assert len(token) == TOKEN_LENGTH
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", token) and "." not in body.rsplit("/", 1)[1]
    with session_scope(rt.sessions) as session:
        [link] = session.scalars(select(FormLink)).all()
        assert link.token_hash == token_hash(token) and token not in link.token_hash
        assert link.instrument == "phq9" and link.used_at is None
        assert link.expires_at == T0 + timedelta(hours=72)
        [msg] = session.scalars(select(Message)).all()
        assert msg.template == "checkin_link"
        assert "Little interest" not in body and "PHQ" not in body


def test_two_links_never_share_a_token(rt: Runtime) -> None:
    first = token_of(send_questionnaire(rt, "phq9"))
    with session_scope(rt.sessions) as session:
        pid = session.scalar(select(Patient.id))
        mid = queue_now(
            session,
            now=T0,
            dedupe_key="test:gad7",
            template="checkin_item",
            kind="checkin",
            channel="sms",
            patient_id=pid,
            instrument="gad7",
            context={"instrument": "gad7", "item_index": 0},
            urgent=False,
        )
        assert mid is not None
    send_now(rt, [mid], T0)
    with session_scope(rt.sessions) as session:
        body = session.scalar(select(Message.body).where(Message.id == mid))
    assert body is not None and token_of(body) != first


def test_opening_the_form_records_nothing_and_shows_every_item(rt: Runtime) -> None:
    token = token_of(send_questionnaire(rt))
    for _ in range(3):  # a link preview, a mail scanner, the patient
        page = open_form(rt, token, T0 + timedelta(minutes=1))
        assert page.status == "form" and page.instrument is not None
        assert len(page.instrument.items) == 9
    assert answers(rt) == {} and checkin_status(rt) == "open"


def test_a_submitted_form_is_stored_item_by_item_and_only_once(rt: Runtime) -> None:
    token = token_of(send_questionnaire(rt))
    page = submit(rt, token, PHQ9_ALL, T0 + timedelta(minutes=3))
    assert page.status == "received" and not page.crisis
    assert answers(rt) == {k: int(v) for k, v in PHQ9_ALL.items()}
    assert checkin_status(rt) == "answered"
    again = submit(rt, token, {**PHQ9_ALL, "phq9_1": "3"}, T0 + timedelta(minutes=4))
    assert again.status == "already"
    assert open_form(rt, token, T0 + timedelta(minutes=5)).status == "already"
    assert answers(rt)["phq9_1"] == 1
    with session_scope(rt.sessions) as session:
        assert {r.source for r in session.scalars(select(Response))} == {"form"}


def test_an_expired_link_records_nothing(rt: Runtime) -> None:
    token = token_of(send_questionnaire(rt))
    late = T0 + timedelta(hours=72)
    assert open_form(rt, token, late).status == "expired"
    assert submit(rt, token, PHQ9_ALL, late).status == "expired"
    assert answers(rt) == {}


def test_an_unknown_or_malformed_token_is_invalid(rt: Runtime) -> None:
    send_questionnaire(rt)
    for token in ("A" * TOKEN_LENGTH, "short", "x" * 200, "../../etc/passwd"):
        assert open_form(rt, token, T0).status == "invalid"
        assert submit(rt, token, PHQ9_ALL, T0).status == "invalid"
    assert answers(rt) == {}


def test_item9_on_the_form_starts_the_crisis_path_as_a_text_does(rt: Runtime) -> None:
    token = token_of(send_questionnaire(rt))
    page = submit(rt, token, {**PHQ9_ALL, "phq9_9": "2"}, T0 + timedelta(minutes=3))
    assert page.status == "received" and page.crisis
    assert ("phq9_item9", "urgent") in followups(rt)
    with session_scope(rt.sessions) as session:
        sent = {
            (m.template, m.to_address, m.status)
            for m in session.scalars(select(Message).where(Message.kind != "checkin"))
        }
    # The crisis reply to the patient and the page to the on-call, both sent already.
    assert ("crisis_reply", PHONE, "sent") in sent
    assert ("oncall_page", ONCALL, "sent") in sent


def test_a_partial_form_keeps_what_was_answered_and_item9_left_blank_is_high(
    rt: Runtime,
) -> None:
    token = token_of(send_questionnaire(rt))
    partial = {"phq9_1": "2", "phq9_2": "1", "phq9_4": "3"}
    page = submit(rt, token, partial, T0 + timedelta(minutes=3))
    assert page.status == "received"
    assert answers(rt) == {"phq9_1": 2, "phq9_2": 1, "phq9_4": 3}
    assert checkin_status(rt) == "partial"
    assert followups(rt) == [("phq9_item9_unanswered", "high")]
    with session_scope(rt.sessions) as session:
        assert all(r.partial for r in session.scalars(select(Response)))


def test_an_empty_submission_records_nothing_and_keeps_the_link_open(rt: Runtime) -> None:
    token = token_of(send_questionnaire(rt))
    page = submit(rt, token, {"phq9_1": "7", "phq9_2": ""}, T0 + timedelta(minutes=1))
    assert (page.status, page.error) == ("form", "nothing_answered")
    assert answers(rt) == {}
    assert submit(rt, token, PHQ9_ALL, T0 + timedelta(minutes=2)).status == "received"


def test_a_gad7_and_a_peg_are_scored_from_the_form(rt: Runtime) -> None:
    token = token_of(send_questionnaire(rt, "peg"))
    page = submit(rt, token, {"peg_p": "8", "peg_e": "7", "peg_g": "6"}, T0)
    assert page.status == "received"
    assert answers(rt) == {"peg_p": 8, "peg_e": 7, "peg_g": 6}
    assert checkin_status(rt) == "answered"


@pytest.mark.parametrize("language", ["en", "es"])
def test_spanish_and_english_links_are_one_gsm7_segment(rt: Runtime, language: str) -> None:
    body = send_questionnaire(rt, "gad7", language=language)
    assert encoding(body) == "GSM-7" and segments(body) == 1, body
    assert open_form(rt, token_of(body), T0).language == language


def test_a_patient_in_sms_mode_keeps_the_one_item_per_text_conversation(rt: Runtime) -> None:
    body = send_questionnaire(rt, mode="sms")
    assert "/q/" not in body and "Little interest or pleasure in doing things" in body
    with session_scope(rt.sessions) as session:
        assert session.scalars(select(FormLink)).all() == []


def test_a_checkin_email_carries_one_opaque_link_and_no_answer(rt: Runtime) -> None:
    body = send_questionnaire(rt, "phq9", channel="email")
    token = token_of(body)
    assert "/r/" not in body and "Thoughts that you would be better off dead" not in body
    # The value is chosen on the page: a link never stands for one answer.
    page = submit(rt, token, {**PHQ9_ALL, "phq9_3": "2"}, T0 + timedelta(minutes=1))
    assert page.status == "received" and answers(rt)["phq9_3"] == 2


def test_the_date_of_birth_guards_the_form_and_locks_after_the_limit(db_url: str) -> None:
    rt = runtime(db_url, form_verify_dob=True)
    try:
        token = token_of(send_questionnaire(rt))
        first = open_form(rt, token, T0)
        assert first.status == "verify" and first.instrument is None
        # Answers without the date record nothing; nor do answers with a wrong one.
        assert submit(rt, token, PHQ9_ALL, T0).status == "verify"
        wrong = {"dob_m": "3", "dob_d": "28", "dob_y": "1985"}
        page = submit(rt, token, {**wrong, **PHQ9_ALL}, T0)
        assert (page.status, page.error, page.instrument) == ("verify", "dob_wrong", None)
        assert page.attempts_left == DOB_ATTEMPTS - 1
        right = {"dob_m": "03", "dob_d": "27", "dob_y": "1985"}
        shown = submit(rt, token, {**right, "step": "verify"}, T0)
        assert shown.status == "form" and shown.instrument is not None
        assert answers(rt) == {}
        assert submit(rt, token, {**right, **PHQ9_ALL}, T0).status == "received"
        assert len(answers(rt)) == 9

        other = token_of(send_questionnaire_again(rt))
        for _ in range(DOB_ATTEMPTS - 1):
            assert submit(rt, other, wrong, T0).status == "verify"
        assert submit(rt, other, wrong, T0).status == "locked"
        assert submit(rt, other, {**right, **PHQ9_ALL}, T0).status == "locked"
        assert open_form(rt, other, T0).status == "locked"
    finally:
        rt.close()


def send_questionnaire_again(rt: Runtime) -> str:
    with session_scope(rt.sessions) as session:
        pid = session.scalar(select(Patient.id))
        mid = queue_now(
            session,
            now=T0,
            dedupe_key="test:again",
            template="checkin_item",
            kind="checkin",
            channel="sms",
            patient_id=pid,
            instrument="gad2",
            context={"instrument": "gad2", "item_index": 0},
            urgent=False,
        )
        assert mid is not None
    send_now(rt, [mid], T0)
    with session_scope(rt.sessions) as session:
        body = session.scalar(select(Message.body).where(Message.id == mid))
    assert body is not None
    return body
