""" "Reply STOP to opt out" on the first SMS of each calendar month, in the patient's zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.channels.console import ConsoleSms
from worker.domain.sms_text import segments
from worker.domain.stop_notice import FORMS, with_stop_notice
from worker.services.outbound.send_now import queue_now
from worker.services.records.patients import add_patient
from worker.services.runtime import Runtime
from worker.store.db import session_scope
from worker.tick import tick

TZ = "America/Los_Angeles"
PHONE = "+13105550188"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def patient(rt: Runtime, at: datetime) -> int:
    with session_scope(rt.sessions) as s:
        # Consent without the opt-in confirmation: the notice is what is tested here.
        p = add_patient(
            s, now=at, name="Lee", tz=TZ, channel="sms", phone=PHONE, consent=["sms"],
            confirm_optin=False,
        )  # fmt: skip
        return p.id


def send(rt: Runtime, pid: int, at: datetime, template: str = "checkin_mood", **kw: object) -> str:
    """Queue one SMS due at `at`, tick, and return what the phone received."""
    options: dict[str, object] = {"kind": "checkin", "instrument": "mood"}
    options.update(kw)
    with session_scope(rt.sessions) as s:
        queue_now(
            s,
            now=at,
            dedupe_key=f"t:{at.isoformat()}:{template}",
            template=template,
            channel="sms",
            patient_id=pid,
            urgent=False,
            exempt=bool(options.pop("exempt", False)),
            **options,  # type: ignore[arg-type]
        )
    channel = rt.channels.sms
    assert isinstance(channel, ConsoleSms)
    before = len(channel.sent)
    tick(rt, at)
    [record] = channel.sent[before:]
    return record.body


def test_the_first_sms_of_each_local_month_carries_the_notice(crt: Runtime) -> None:
    pid = patient(crt, utc(2026, 3, 20, 17))
    first = send(crt, pid, utc(2026, 3, 31, 23, 30))  # Mar 31, 16:30 in Los Angeles
    assert first.endswith(" Reply STOP to opt out.") and segments(first) == 1
    # April in UTC, still March 31 (20:00) in Los Angeles: no second notice.
    assert "STOP" not in send(crt, pid, utc(2026, 4, 1, 3, 0))
    assert send(crt, pid, utc(2026, 4, 1, 16, 0)).endswith(" Reply STOP to opt out.")
    assert "STOP" not in send(crt, pid, utc(2026, 4, 2, 16, 0))


def test_crisis_replies_are_untouched_and_do_not_use_up_the_month(crt: Runtime) -> None:
    pid = patient(crt, utc(2026, 5, 1, 17))
    crisis = send(
        crt, pid, utc(2026, 5, 2, 17), "crisis_reply", kind="crisis", instrument=None, exempt=True
    )
    assert "STOP" not in crisis
    assert "STOP to opt out" in send(crt, pid, utc(2026, 5, 2, 18))


def test_a_body_with_no_room_goes_as_it_is_and_the_next_short_one_carries_it(
    crt: Runtime,
) -> None:
    pid = patient(crt, utc(2026, 6, 1, 17))
    # PHQ-9 item 8 by SMS is two segments already: the notice never adds to it.
    long = send(
        crt, pid, utc(2026, 6, 2, 17), "checkin_item", instrument="phq9", context={"item_index": 7}
    )
    assert "STOP" not in long
    assert "STOP to opt out" in send(crt, pid, utc(2026, 6, 3, 17))


def test_a_text_that_names_stop_counts_as_the_months_notice(crt: Runtime) -> None:
    pid = patient(crt, utc(2026, 7, 1, 17))
    help_reply = send(crt, pid, utc(2026, 7, 2, 17), "help", kind="reply", instrument=None)
    assert help_reply.count("STOP") == 1
    assert "STOP" not in send(crt, pid, utc(2026, 7, 3, 17))


def test_off_means_off(rt: Runtime) -> None:
    pid = patient(rt, utc(2026, 8, 1, 17))
    assert "STOP" not in send(rt, pid, utc(2026, 8, 2, 17))


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_shorter_form_is_used_when_the_long_one_does_not_fit(language: str) -> None:
    longest, shorter, shortest = FORMS[language]
    body = "x" * (160 - len(longest))  # one character short of room for the long form
    assert with_stop_notice(body, language) == f"{body} {shorter}"
    body = "x" * (159 - len(shortest))
    assert with_stop_notice(body, language) == f"{body} {shortest}"
    assert with_stop_notice("x" * (160 - len(shortest)), language) is None
    # A UCS-2 body (70 a segment) takes the form that keeps it one UCS-2 segment.
    assert with_stop_notice("á" * 50, language) == "á" * 50 + f" {shorter}"


def test_a_retried_send_carries_the_notice_again(crt: Runtime) -> None:
    from sqlalchemy import update

    from worker.store.models import Message

    pid = patient(crt, utc(2026, 9, 1, 17))
    assert "STOP to opt out" in send(crt, pid, utc(2026, 9, 2, 17))
    # As after a transient provider error: the row goes round again and is rendered anew.
    with session_scope(crt.sessions) as s:
        s.execute(
            update(Message)
            .where(Message.patient_id == pid)
            .values(status="scheduled", due_at=utc(2026, 9, 2, 18))
        )
    channel = crt.channels.sms
    assert isinstance(channel, ConsoleSms)
    tick(crt, utc(2026, 9, 2, 18))
    assert channel.sent[-1].body.endswith(" Reply STOP to opt out.")


@pytest.mark.parametrize("template", ["stop_confirmation", "possible_risk_reply"])
def test_no_notice_rides_on_the_stop_confirmation_or_the_possible_risk_reply(
    crt: Runtime, template: str
) -> None:
    # "Reply STOP to opt out" under "You are unsubscribed" would contradict it; the risk reply
    # stays as written. Neither uses up the month's notice.
    pid = patient(crt, utc(2026, 9, 1, 17))
    body = send(crt, pid, utc(2026, 9, 2, 17), template, kind="reply", instrument=None)
    assert "988" in body or "START" in body
    assert "STOP" not in body and "opt out" not in body, body
    assert "STOP to opt out" in send(crt, pid, utc(2026, 9, 2, 18))
