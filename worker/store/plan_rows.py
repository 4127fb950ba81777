"""The planner's writes: message rows as plain tuples, inserted many per statement.

The ORM (or Core with one dict per row) spends more time per row than computing the row does,
so the planner hands over tuples (`Row`: the `PER_ROW` columns, then a tuple of the `SHARED`
ones) whose datetime and JSON values were converted, once per distinct value, by `DbValues`
with the columns' own SQLAlchemy types: what is stored is what the ORM would store. The
`CONSTANT` columns are bound once per statement. Every statement is INSERT … ON CONFLICT
(dedupe_key) DO NOTHING: on SQLite over a VALUES list of up to `SQLITE_ROWS` rows; on
PostgreSQL over `unnest` of binary arrays, a short statement that psycopg parses once whatever
the number of rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Dialect,
    Integer,
    Select,
    Table,
    and_,
    any_,
    func,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from worker.store.models import Message

MESSAGES: Table = Message.__table__  # type: ignore[assignment]

# A row is the columns that differ from row to row, then one tuple of the columns that rows of
# the same rule, zone, window and patient settings share (`SHARED`): PostgreSQL gets each
# distinct shared tuple once per statement.
PER_ROW = ("patient_id", "schedule_id", "appointment_id", "appointment_version", "dedupe_key")
SHARED = (
    "channel",
    "kind",
    "template",
    "language",
    "instrument",
    "due_at",
    "not_after",
    "local_time",
    "context",
)
CONSTANT = ("priority", "exempt_quiet_hours", "status", "attempts", "created_at", "updated_at")
SCHEDULE_ID = PER_ROW.index("schedule_id")
APPOINTMENT_ID = PER_ROW.index("appointment_id")
# 14 parameters a row: 14,000 per statement stays under SQLite's limit (32,766).
SQLITE_ROWS = 1000

Row = tuple[int, int | None, int | None, int | None, str, tuple[Any, ...]]


def _processor(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """What SQLAlchemy does to a value bound to `column` on `dialect`."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process or (lambda value: value)


class DbValues:
    """Converts values as the messages table's column types do when they bind them."""

    def __init__(self, dialect: Dialect) -> None:
        self._datetime = _processor(MESSAGES.c.due_at, dialect)
        self._bool = _processor(MESSAGES.c.exempt_quiet_hours, dialect)
        # PostgreSQL gets JSON as text and casts it (see _unnest_sql): the JSON type's own
        # processor wraps each value for psycopg, which then serialises every row again. The
        # engines use SQLAlchemy's default serialiser, json.dumps.
        self._json = (
            json.dumps if dialect.name == "postgresql" else _processor(MESSAGES.c.context, dialect)
        )

    def instant(self, value: datetime | None) -> Any:
        return None if value is None else self._datetime(value)

    def json(self, value: dict[str, Any]) -> Any:
        return self._json(value)

    def constants(self, now: datetime) -> tuple[Any, ...]:
        """The CONSTANT columns of a row planned at `now`."""
        return ("bulk", self._bool(False), "scheduled", 0, self.instant(now), self.instant(now))


def insert_rows(conn: Connection, rows: Sequence[Row], constants: tuple[Any, ...]) -> int:
    """Insert the rows, skipping any whose dedupe key exists. Returns the rows added."""
    if not rows:
        return 0
    name = conn.dialect.name
    if name == "postgresql":
        return _insert_unnest(conn, rows, constants)
    if name != "sqlite":
        # Settings accept only these two; anything else is a programming error, said plainly.
        raise ValueError(f"the planner writes to SQLite or PostgreSQL, not {name}")
    added = 0
    for i in range(0, len(rows), SQLITE_ROWS):
        chunk = rows[i : i + SQLITE_ROWS]
        params = constants + tuple(value for row in chunk for value in (*row[:5], *row[5]))
        result = conn.exec_driver_sql(_values_sql(len(chunk)), params)
        added += max(result.rowcount, 0)
    return added


def _insert_unnest(conn: Connection, rows: Sequence[Row], constants: tuple[Any, ...]) -> int:
    # psycopg dumps array elements one by one in Python (~1 µs each, more for datetimes and
    # quoted text): sending each distinct shared tuple once, and a row's position in that list,
    # makes the parameters a fifth of the size.
    positions: dict[tuple[Any, ...], int] = {}
    picks = [positions.setdefault(row[5], len(positions) + 1) for row in rows]
    per_row = tuple(list(values) for values in zip(*(row[:5] for row in rows), strict=True))
    shared = tuple(list(values) for values in zip(*positions, strict=True))
    result = conn.exec_driver_sql(
        _unnest_sql(conn.dialect), constants + per_row + (picks,) + shared
    )
    return max(result.rowcount, 0)


def mark_planned(
    conn: Connection, table: Table, seen: Sequence[tuple[int, Any]], horizon: datetime
) -> None:
    """Set `planned_until` to `horizon` on each (id, updated_at as the driver returned it) of
    `table` still at that `updated_at`, in one statement. Conditional on the version read: a
    reschedule or edit that commits while we plan resets planned_until, and must not be
    overwritten, or its new reminders would never be planned."""
    if not seen:
        return
    ids = [i for i, _ in seen]
    if conn.dialect.name == "postgresql":
        until = _processor(table.c.planned_until, conn.dialect)(horizon)
        conn.exec_driver_sql(
            f"UPDATE {table.name} SET planned_until = %s"  # noqa: S608 (our constants only)
            " FROM unnest(%b::INTEGER[], %b::TIMESTAMP WITH TIME ZONE[]) AS v(id, updated_at)"
            f" WHERE {table.name}.id = v.id AND {table.name}.updated_at = v.updated_at"
            # As in id_in: without a range on the key, PostgreSQL scans the whole table.
            f" AND {table.name}.id BETWEEN %s AND %s",
            (until, ids, [version for _, version in seen], min(ids), max(ids)),
        )
        return
    # SQLite: the caller read these versions in this same write transaction, and SQLite has one
    # writer, so they still hold; the ids alone say which rows.
    conn.execute(update(table).where(id_in(conn, table, ids)).values(planned_until=horizon))


def id_in(conn: Connection, table: Table, ids: Iterable[int]) -> ColumnElement[bool]:
    """`table.id` is one of `ids` (not empty), as one parameter."""
    wanted = sorted(ids)
    # The range lets PostgreSQL use the primary key: for thousands of ids in an IN list or an
    # array it otherwise scans the whole table, once per batch.
    in_range = table.c.id.between(wanted[0], wanted[-1])
    if conn.dialect.name == "postgresql":
        return and_(in_range, table.c.id == any_(literal(wanted, ARRAY(Integer))))
    # IN with thousands of ids is rendered, one "?" each, on every execution.
    listed: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(json.dumps(wanted))
    )
    return and_(in_range, table.c.id.in_(listed))


def _head() -> str:
    return f"INSERT INTO {MESSAGES.name} ({', '.join(PER_ROW + SHARED + CONSTANT)}) SELECT "


# Only our own constants are spliced into the statements below; every value is a parameter.


# A batch's last statement has fewer rows; a few sizes are kept, not one string per size.
@lru_cache(maxsize=8)
def _values_sql(rows: int) -> str:
    width = len(PER_ROW) + len(SHARED)
    one = "(" + ", ".join(["?"] * width) + ")"
    picked = ", ".join(f"column{i + 1}" for i in range(width))
    # "WHERE true": SQLite's grammar needs it between INSERT … SELECT and ON CONFLICT.
    return (
        _head()
        + f"{picked}, {', '.join(['?'] * len(CONSTANT))} FROM (VALUES "
        + ", ".join([one] * rows)
        + ") WHERE true ON CONFLICT (dedupe_key) DO NOTHING"
    )


@lru_cache(maxsize=2)
def _unnest_sql(dialect: Dialect) -> str:
    def arrays(columns: tuple[str, ...]) -> str:
        # %b: psycopg sends the arrays in binary; as text it quotes every element with a
        # regular expression, five times slower. JSON arrives as text and is cast.
        return ", ".join(f"%b::{MESSAGES.c[c].type.compile(dialect)}[]" for c in columns)

    return (
        _head()
        + ", ".join(f"r.{c}" for c in PER_ROW)
        + ", "
        + ", ".join(f"s.{c}" for c in SHARED)
        + f", {', '.join(['%s'] * len(CONSTANT))}"
        + f" FROM unnest({arrays(PER_ROW)}, %b::INTEGER[]) AS r({', '.join(PER_ROW)}, pick)"
        + f" JOIN unnest({arrays(SHARED)}) WITH ORDINALITY AS s({', '.join(SHARED)}, pick)"
        + " USING (pick) ON CONFLICT (dedupe_key) DO NOTHING"
    )
