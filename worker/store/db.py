"""Engines and sessions. SQLite gets WAL and IMMEDIATE transactions; PostgreSQL is used as is."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    statement_timeout_ms: int = 0,
    idle_tx_timeout_ms: int = 0,
) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL.

    PostgreSQL: every connection gets `statement_timeout` and
    `idle_in_transaction_session_timeout` (milliseconds; 0 leaves the server's setting, off by
    default), so a stuck query or a transaction left open fails with an error instead of holding
    a worker thread and its row locks until the broker redelivers (docs/deadlines.md). A
    cancelled statement raises OperationalError ("canceling statement due to statement
    timeout"). SQLite has neither setting: its only wait is busy_timeout, below.

    SQLite: the parent folder is created; WAL lets readers run beside the one writer; every
    transaction starts with BEGIN IMMEDIATE, because a deferred transaction that later writes
    fails with SQLITE_BUSY at once instead of waiting for busy_timeout (a lock upgrade cannot wait).
    """
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size * 2,
        )
        _configure_sqlite(engine)
        return engine
    # hide_parameters: an error's message never carries the statement's values (patients'
    # names, message bodies) into a log.
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
    )
    _configure_postgres(engine, statement_timeout_ms, idle_tx_timeout_ms)
    return engine


def _configure_postgres(engine: Engine, statement_ms: int, idle_tx_ms: int) -> None:
    settings = [
        (name, int(ms))
        for name, ms in (
            ("statement_timeout", statement_ms),
            ("idle_in_transaction_session_timeout", idle_tx_ms),
        )
        if ms > 0
    ]
    if not settings:
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Session-level SETs, outside any transaction: set inside one, the pool's rollback on
        # return would undo them. Not through a transaction-pooling PgBouncer, which shares
        # server sessions between clients (set the limits on the database role there instead).
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        try:
            with dbapi_conn.cursor() as cur:
                for name, ms in settings:
                    cur.execute(f"SET {name} = {ms}")  # ints from Settings, not user input
        finally:
            dbapi_conn.autocommit = autocommit


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, not the driver's own guesswork.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


# SQLSTATEs of PostgreSQL's two deadlines (query_canceled also covers a cancel by an operator,
# hence the message check below), and what a caller is told when one passed.
_DEADLINES = {
    "57014": (
        "statement timeout",
        "the database cancelled a statement that ran longer than CHECKIN_DB_STATEMENT_TIMEOUT_MS "
        "(a lock held elsewhere, or a slow query); nothing was written",
    ),
    "25P03": (
        "idle-in-transaction",
        "the database ended a transaction left idle longer than CHECKIN_DB_IDLE_TX_TIMEOUT_MS; "
        "nothing was written",
    ),
}


def deadline_passed(exc: BaseException) -> str | None:
    """One clear line when `exc` (a SQLAlchemy error) is a PostgreSQL deadline passing, else
    None. The transaction was rolled back: the caller may try again later."""
    orig = getattr(exc, "orig", None)
    found = _DEADLINES.get(str(getattr(orig, "sqlstate", "") or ""))
    if found is None or found[0] not in str(orig):
        return None
    return found[1]


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in a transaction: committed on success, rolled back on error, always closed."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
