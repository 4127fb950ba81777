"""What every `checkin` command shares: options, errors, the runtime, output as text or JSON.

Imported by the command modules (never the other way round), so the command tree is assembled in
one place (worker/cli/main.py) without an import circle. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from worker.config import Settings
    from worker.services.runtime import Runtime

JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")
NowOpt = typer.Option(None, "--now", help="Act as if it were this moment (ISO 8601 with offset).")


# ---------------------------------------------------------------- plumbing


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings() -> Settings:
    from worker.config import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc), 2)


@contextmanager
def runtime() -> Iterator[Runtime]:
    from worker.channels.factory import build_channels
    from worker.services.records import audit
    from worker.services.runtime import build_runtime

    s = settings()
    # The console backend writes to stderr here, so that stdout carries only --json output.
    rt = build_runtime(s, channels=build_channels(s, stream=sys.stderr), pool_size=2)
    # Everything this command records in the audit trail names the OS user who ran it.
    try:
        with audit.acting(audit.cli_who()):
            yield rt
    finally:
        rt.close()


def production_settings() -> Settings:
    """Settings for a long-running server process: CHECKIN_SECRET_KEY is required outside
    development (Settings.is_development)."""
    from worker.config import ConfigError

    s = settings()
    try:
        s.require_secret_key()
    except ConfigError as exc:
        fail(str(exc), 2)
    return s


# The flag of each input a service names in InvalidInput.field, where it is not simply
# "--" + the field: services speak the domain's words, the flag is this entry point's.
FLAGS: dict[str, str] = {"starts_at": "--at", "send_window": "--send-window"}


def flag_for(field: str) -> str:
    return FLAGS.get(field, "--" + field.replace("_", "-"))


@contextmanager
def service_errors() -> Iterator[None]:
    """Turn the errors a service raises for bad input into one line and exit status 1; an
    error about one input ends with the flag that gave it, e.g. "... (--by)"."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from worker.services.errors import InvalidInput, NotFound

    try:
        yield
    except InvalidInput as exc:
        # Not stripped of quotes (NotFound's are): a message may end with a quoted value.
        message = str(exc)
        fail(f"{message} ({flag_for(exc.field)})" if exc.field else message)
    except NotFound as exc:
        fail(str(exc).strip("'\""))
    except (OperationalError, ProgrammingError) as exc:
        text = str(exc.orig) if exc.orig is not None else str(exc)
        if "no such table" in text or "does not exist" in text:
            fail("the database is not set up: run `checkin db upgrade`", 2)
        from worker.store.db import deadline_passed

        if (deadline := deadline_passed(exc)) is not None:
            fail(deadline, 2)
        raise


@contextmanager
def transaction(rt: Runtime) -> Iterator[Session]:
    from worker.store.db import session_scope

    with service_errors(), session_scope(rt.sessions) as session:
        yield session


def audit_read(
    session: Session, action: str, patient_id: int | None = None, entity: str = "patient"
) -> None:
    """Record a look at patient data from the command line (with the OS user: see runtime())."""
    from worker.services.records import audit

    audit.access(session, now=settings().now(), action=action, patient_id=patient_id, entity=entity)


def parse_now(value: str | None) -> datetime:
    if value is None:
        return settings().now()  # real time, or the CHECKIN_CLOCK rehearsal clock
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--now must be ISO 8601, got {value!r}")
    if parsed.tzinfo is None:
        fail("--now needs a UTC offset (e.g. 2026-03-08T09:00:00-05:00 or ...Z)")
    return parsed.astimezone(UTC)


def parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} must be YYYY-MM-DD, got {value!r}")


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def emit(data: Any, as_json: bool, render: Callable[[Any], str] | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")
    elif render is not None:
        typer.echo(render(data))
    else:
        typer.echo(json.dumps(data, default=str, indent=2, ensure_ascii=False))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    widths = [min(w, 60) for w in widths]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    for row in cells:
        lines.append(
            "  ".join(
                (v if len(v) <= w else v[: w - 1] + "…").ljust(w)
                for v, w in zip(row, widths, strict=True)
            )
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- serialisers


# Shared with the API (worker/services/read/views.py); imported on use to keep `checkin --help` fast.


def patient_dict(p: Any) -> dict[str, Any]:
    from worker.services.read import views

    return views.patient_dict(p)


def schedule_dict(s: Any) -> dict[str, Any]:
    from worker.services.read import views

    return views.schedule_dict(s)


def appointment_dict(a: Any, tz: str | None = None) -> dict[str, Any]:
    from worker.services.read import views

    return views.appointment_dict(a, tz)
