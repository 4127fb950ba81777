"""The outbox state machine: every move in the table works through `move()` on a real database,
every other pair is refused before anything is written, and the groups and reports agree with
the table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import product

import pytest
from sqlalchemy import String, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from worker.store import outbox
from worker.store.db import make_engine, make_session_factory, session_scope
from worker.store.models import Message
from worker.store.outbox import ALLOWED, MOVES, MessageStatus, MoveRefused, move

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
S = MessageStatus
REFUSED = [pair for pair in product(S, S) if pair not in ALLOWED]


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def add_rows(session: Session, statuses: list[MessageStatus], tag: str) -> list[int]:
    rows = [
        Message(
            channel="sms",
            kind="checkin",
            template="checkin_item",
            due_at=NOW - timedelta(minutes=5),
            dedupe_key=f"outbox-test:{tag}:{i}",
            context={},
            status=status,
            created_at=NOW - timedelta(hours=1),
            updated_at=NOW - timedelta(hours=1),
        )
        for i, status in enumerate(statuses)
    ]
    session.add_all(rows)
    session.flush()
    return [r.id for r in rows]


def states(session: Session, ids: list[int]) -> list[str]:
    rows = session.execute(select(Message.id, Message.status).where(Message.id.in_(ids)))
    by_id = {mid: status for mid, status in rows}
    return [by_id[i] for i in ids]


def test_every_move_in_the_table_works_and_touches_only_its_row(
    sessions: sessionmaker[Session],
) -> None:
    with session_scope(sessions) as session:
        movers = add_rows(session, [m.from_ for m in MOVES], "mover")
        # One row in every state beside each mover, in the same id list: the guard must leave
        # every one of them alone unless it is in the move's `from_`.
        bystanders = add_rows(session, list(S), "bystander")
    for row, m in zip(movers, MOVES, strict=True):
        others = [b for b, state in zip(bystanders, S, strict=True) if state != m.from_]
        with session_scope(sessions) as session:
            moved = move(session, [row, *others], m.from_, m.to, updated_at=NOW)
        assert moved == 1, f"{m.from_} -> {m.to}"
    with session_scope(sessions) as session:
        assert states(session, movers) == [m.to for m in MOVES]
        assert states(session, bystanders) == list(S)
        stamped = session.scalars(select(Message.updated_at).where(Message.id.in_(movers)))
        assert set(stamped) == {NOW}


def test_every_other_pair_is_refused_and_changes_nothing(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        ids = add_rows(session, list(S), "all")
    for from_, to in REFUSED:
        with session_scope(sessions) as session:
            with pytest.raises(MoveRefused, match=f"{from_} -> {to}"):
                move(session, ids, from_, to, updated_at=NOW)
            # The guarded forms refuse the same pairs.
            with pytest.raises(MoveRefused):
                outbox.move_returning(session, ids, from_, to, ("id",), updated_at=NOW)
            with pytest.raises(MoveRefused):
                outbox.move_each(session, [{"m_id": i} for i in ids], from_, to, updated_at=NOW)
    with session_scope(sessions) as session:
        assert states(session, ids) == list(S)
        assert set(session.scalars(select(Message.updated_at))) == {NOW - timedelta(hours=1)}


def test_refused_pairs_are_exactly_the_complement_of_the_table() -> None:
    assert len(ALLOWED) == len(MOVES), "a move listed twice"
    assert len(REFUSED) + len(ALLOWED) == len(S) ** 2
    assert all(f != t for f, t in ALLOWED), "a state never moves to itself"


def test_a_move_from_several_states_is_refused_when_one_of_them_is_not_allowed() -> None:
    with pytest.raises(MoveRefused, match="scheduled -> sent"):
        outbox.check((S.SENDING, S.SCHEDULED), S.SENT)
    with pytest.raises(MoveRefused, match="at least one"):
        outbox.check((), S.SENT)


def test_a_state_read_back_as_a_plain_string_is_one_state() -> None:
    assert outbox.check("sending", S.SENT) == (S.SENDING,)
    with pytest.raises(ValueError):
        outbox.check("sendin", S.SENT)


def test_the_claims_return_what_they_moved_and_the_batch_form_sets_values_per_row(
    sessions: sessionmaker[Session],
) -> None:
    with session_scope(sessions) as session:
        ids = add_rows(session, [S.SCHEDULED, S.SCHEDULED, S.SENT], "claims")
    with session_scope(sessions) as session:
        claimed = outbox.move_returning(
            session, ids, S.SCHEDULED, S.QUEUED, ("id", "due_at"), queued_at=NOW
        )
        assert sorted(r.id for r in claimed) == ids[:2]
        assert {r.due_at for r in claimed} == {NOW - timedelta(minutes=5)}
    with session_scope(sessions) as session:
        outbox.move(session, ids[:2], S.QUEUED, S.SENDING)
        outbox.move_each(
            session,
            [{"m_id": mid, "m_sid": f"SM{mid}"} for mid in ids],
            S.SENDING,
            S.SENT,
            provider_id=bindparam("m_sid"),
        )
    with session_scope(sessions) as session:
        rows = session.execute(
            select(Message.status, Message.provider_id).where(Message.id.in_(ids))
        ).all()
        # The third row was `sent` already: not in `from_`, so its provider id was not written.
        assert sorted(rows, key=lambda r: (r[1] is None, str(r[1]))) == [
            (S.SENT, f"SM{ids[0]}"),
            (S.SENT, f"SM{ids[1]}"),
            (S.SENT, None),
        ]


def test_the_new_status_is_the_move_not_a_value() -> None:
    with pytest.raises(MoveRefused, match="not a value"):
        outbox._guarded(
            Message.__table__.update(),  # type: ignore[attr-defined]
            Message.status,
            S.SCHEDULED,
            S.QUEUED,
            {"status": "queued"},
        )


def test_every_backward_move_says_why_and_only_those_return_to_an_earlier_step() -> None:
    order = list(S)
    send_path = (S.SCHEDULED, S.QUEUED, S.SENDING)
    for m in MOVES:
        assert m.why.strip(), f"{m.from_} -> {m.to} has no reason"
        earlier = m.to in send_path and order.index(m.to) < order.index(m.from_)
        assert m.back == earlier, f"{m.from_} -> {m.to}: back={m.back}"
    backward = {(m.from_, m.to) for m in MOVES if m.back}
    assert {
        (S.QUEUED, S.SCHEDULED),
        (S.SENDING, S.SCHEDULED),
        (S.SUPPRESSED, S.SCHEDULED),
        (S.CANCELLED, S.SCHEDULED),
    } <= backward


def test_delivery_reports_move_only_along_the_table_and_never_back_into_the_send() -> None:
    for reported, froms in outbox.REPORTS.items():
        assert all((f, reported) in ALLOWED for f in froms)
        assert S.SCHEDULED not in froms and S.QUEUED not in froms


def test_the_groups_are_made_of_states() -> None:
    groups = {
        name: getattr(outbox, name)
        for name in (
            "PENDING",
            "WAITING",
            "DONE",
            "WENT_OUT",
            "ACCEPTED",
            "FAILURES",
            "PROBLEMS",
            "IN_FLIGHT",
            "NOT_TRIED",
        )
    }
    for name, group in groups.items():
        assert group and all(isinstance(s, MessageStatus) for s in group), name
        assert len(set(group)) == len(group), name
    assert set(outbox.DONE) | set(outbox.WAITING) == set(S)
    assert not set(outbox.DONE) & set(outbox.WAITING)


def test_every_state_fits_the_column_and_the_database_keeps_the_same_strings() -> None:
    column = Message.__table__.c.status  # type: ignore[attr-defined]
    assert isinstance(column.type, String)
    assert max(len(s) for s in S) <= (column.type.length or 0)
    assert [s.value for s in S] == [
        "scheduled",
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "cancelled",
        "suppressed",
        "failed",
        "unknown",
    ]
