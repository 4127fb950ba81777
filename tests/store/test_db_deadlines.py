"""PostgreSQL deadlines: a stuck query (a sleep, or a lock another connection holds) fails with
a clear error instead of holding a worker thread until the broker redelivers its task."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from tests.cli import Checkin
from tests.conftest import make_settings
from worker.config import load_settings
from worker.services.records.patients import add_patient, get_patient
from worker.services.runtime import Runtime, build_runtime
from worker.store.db import deadline_passed, make_engine, session_scope

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
# Far longer than any deadline below: a call still running after this was not bounded.
BOUND_SECONDS = 20.0


@pytest.fixture
def short(pg_url: str) -> Iterator[Runtime]:
    rt = build_runtime(
        make_settings(pg_url, db_statement_timeout_ms=300, db_idle_tx_timeout_ms=300)
    )
    yield rt
    rt.close()


def in_worker_thread(call: Any) -> BaseException:
    """Run `call` on another thread, as a Celery worker thread would, and return what it
    raised; fails if the thread is still held after BOUND_SECONDS."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(call)
        error = future.exception(timeout=BOUND_SECONDS)
    assert error is not None, "the call returned instead of failing"
    return error


def test_the_settings_reach_every_postgres_connection(pg_url: str) -> None:
    rt = build_runtime(make_settings(pg_url))
    try:
        with rt.engine.connect() as conn:
            # Defaults: 30 s and 60 s, and still in force after a rolled-back transaction.
            conn.rollback()
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "30s"
            assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "1min"
    finally:
        rt.close()
    off = build_runtime(make_settings(pg_url, db_statement_timeout_ms=0, db_idle_tx_timeout_ms=0))
    try:
        with off.engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
            assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "0"
    finally:
        off.close()


def test_the_variables_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKIN_DB_STATEMENT_TIMEOUT_MS", "1500")
    monkeypatch.setenv("CHECKIN_DB_IDLE_TX_TIMEOUT_MS", "0")
    s = load_settings(_env_file=None)
    assert (s.db_statement_timeout_ms, s.db_idle_tx_timeout_ms) == (1500, 0)


def test_a_sleeping_query_is_cancelled_and_frees_the_thread(short: Runtime) -> None:
    def stuck() -> None:
        with session_scope(short.sessions) as session:
            session.execute(text("SELECT pg_sleep(60)"))

    started = time.monotonic()
    error = in_worker_thread(stuck)
    assert isinstance(error, OperationalError)
    assert "statement timeout" in str(error.orig)
    assert deadline_passed(error) == (
        "the database cancelled a statement that ran longer than CHECKIN_DB_STATEMENT_TIMEOUT_MS "
        "(a lock held elsewhere, or a slow query); nothing was written"
    )
    assert time.monotonic() - started < BOUND_SECONDS
    # The pool's connection is fine afterwards: the next call works.
    with session_scope(short.sessions) as session:
        assert session.execute(text("SELECT 1")).scalar() == 1


def test_a_service_waiting_on_a_lock_fails_with_a_clear_error(short: Runtime, pg_url: str) -> None:
    with session_scope(short.sessions) as session:
        pid = add_patient(
            session, now=NOW, name="Ana", tz="America/New_York", channel="sms",
            phone="+12125550170",
        ).id  # fmt: skip
    other = create_engine(pg_url)
    try:
        with other.connect() as conn:
            conn.execute(text("LOCK TABLE patients IN ACCESS EXCLUSIVE MODE"))

            def wait_for_patient() -> None:
                with session_scope(short.sessions) as session:
                    get_patient(session, pid)

            error = in_worker_thread(wait_for_patient)
            assert isinstance(error, OperationalError) and deadline_passed(error) is not None
            conn.rollback()
        # The lock gone, the same runtime reads the patient at once.
        with session_scope(short.sessions) as session:
            assert get_patient(session, pid).name == "Ana"
    finally:
        other.dispose()


def test_the_command_line_says_the_database_took_too_long(pg_url: str) -> None:
    cli = Checkin({"CHECKIN_DATABASE_URL": pg_url, "CHECKIN_DB_STATEMENT_TIMEOUT_MS": "300"})
    pid = cli.json(
        "patients", "add", "--name", "Ana", "--phone", "+12125550171", "--tz",
        "America/New_York", "--channel", "sms",
    )["id"]  # fmt: skip
    other = create_engine(pg_url)
    try:
        with other.connect() as conn:
            conn.execute(text("LOCK TABLE patients IN ACCESS EXCLUSIVE MODE"))
            result = cli.run("patients", "show", str(pid), "--json", ok=False)
            conn.rollback()
    finally:
        other.dispose()
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the database cancelled a statement that ran longer")
    assert result.stdout == ""


def test_a_transaction_left_idle_is_ended_by_the_database(short: Runtime) -> None:
    session = short.sessions()
    try:
        session.execute(text("SELECT 1"))  # a transaction is open from here
        backend = session.execute(text("SELECT pg_backend_pid()")).scalar()
        # Wait (polling, no fixed sleep) until the server has ended the idle session.
        with short.engine.connect() as watcher:
            deadline = time.monotonic() + BOUND_SECONDS
            while watcher.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": backend}
            ).scalar():
                assert time.monotonic() < deadline, "the idle transaction was never ended"
                watcher.rollback()
                time.sleep(0.05)
        # Class 25 (invalid transaction state): psycopg maps it to InternalError.
        with pytest.raises(DBAPIError) as caught:
            session.execute(text("SELECT 1"))
        assert deadline_passed(caught.value) == (
            "the database ended a transaction left idle longer than "
            "CHECKIN_DB_IDLE_TX_TIMEOUT_MS; nothing was written"
        )
    finally:
        session.close()


def test_sqlite_takes_the_settings_and_ignores_them(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url, statement_timeout_ms=300, idle_tx_timeout_ms=300)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
