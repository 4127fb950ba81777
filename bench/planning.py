"""Planning: the real `worker.services.outbound.plan.plan(rt, now)` materialising the next 24 h of a
100,000-patient clinic, on SQLite and on PostgreSQL. Reported as occurrences (message rows
inserted) per second.

One database per kind is seeded once; before each timed run the messages are deleted and the
schedules' and appointments' `planned_until` reset, which is exactly the state before the first
planning (PostgreSQL is vacuumed and analysed in between so dead rows do not pile up).

Besides the wall-clock rate, each run records the planner's own CPU time and (PostgreSQL) the CPU
time of the server process that served it: on a machine shared with other work the wall-clock
rate drops, while occurrences per planner CPU second say what one free core would do.
"""

from __future__ import annotations

import io
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, text, update

from bench.harness import cpu_seconds, database, log, pg_admin_url, postgres_backend_pids
from bench.seed import seed_clinic
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.config import Settings
from worker.domain.planning import clear_memos
from worker.services.outbound.plan import plan
from worker.services.runtime import build_runtime
from worker.store.db import session_scope
from worker.store.models import Appointment, Message, Schedule

HORIZON_HOURS = 24


def _reset(url: str) -> None:
    rt = _runtime(url)
    try:
        with session_scope(rt.sessions) as session:
            session.execute(delete(Message))
            session.execute(update(Schedule).values(planned_until=None))
            session.execute(update(Appointment).values(planned_until=None))
        if rt.is_postgres:
            with rt.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    finally:
        rt.close()


def _runtime(url: str) -> Any:
    settings = Settings(
        database_url=url,
        plan_horizon_hours=HORIZON_HOURS,
        _env_file=None,
    )
    sink = io.StringIO()
    return build_runtime(settings, channels=Channels(ConsoleSms(sink), ConsoleEmail(sink)))


def _db_cpu(url: str) -> float:
    """CPU seconds used so far by the PostgreSQL server processes serving `url` (0 for SQLite,
    which runs inside the planner and is counted in its CPU time)."""
    return sum(cpu_seconds(pid) or 0.0 for pid in postgres_backend_pids(url))


def run(quick: bool, runs: int) -> dict[str, Any]:
    patients = 2_000 if quick else 100_000
    kinds = ["sqlite"] + (["postgres"] if pg_admin_url() else [])
    out: dict[str, Any] = {"patients": patients, "horizon_hours": HORIZON_HOURS, "databases": {}}
    for kind in kinds:
        with (
            tempfile.TemporaryDirectory(prefix="checkin-bench-plan-") as tmp,
            database(kind, Path(tmp)) as url,
        ):
            now = datetime.now(UTC).replace(microsecond=0)
            t = time.perf_counter()
            seeded = seed_clinic(url, patients, now)
            log(
                f"planning/{kind}: seeded {seeded.patients} patients, {seeded.schedules} "
                f"schedules, {seeded.appointments} appointments in "
                f"{time.perf_counter() - t:.1f}s"
            )
            samples = []
            for i in range(runs):
                _reset(url)
                # Every run plans as a freshly started worker would: nothing memoised from the
                # run before (same rules, same window) may make later runs look faster.
                clear_memos()
                rt = _runtime(url)
                try:
                    with rt.engine.connect():
                        pass  # the pool's connection exists, so its server process can be read
                    db_cpu = _db_cpu(url)
                    start, cpu = time.perf_counter(), time.process_time()
                    added = plan(rt, now)
                    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
                    db_cpu = _db_cpu(url) - db_cpu
                    with rt.engine.connect() as conn:
                        rows = conn.execute(select(func.count()).select_from(Message)).scalar()
                finally:
                    rt.close()
                rate = added / elapsed
                log(
                    f"planning/{kind} run {i + 1}: {added} rows in {elapsed:.2f}s = {rate:,.0f}/s "
                    f"(planner CPU {cpu:.2f}s, database server CPU {db_cpu:.2f}s)"
                )
                samples.append(
                    {
                        "occurrences": added,
                        "rows_in_table": rows,
                        "seconds": round(elapsed, 3),
                        "per_second": round(rate, 1),
                        "planner_cpu_seconds": round(cpu, 3),
                        "per_planner_cpu_second": round(added / cpu, 1) if cpu > 0 else None,
                        "database_server_cpu_seconds": round(db_cpu, 3),
                        # Planner and server together: what the work costs, however busy the
                        # machine was (wall-clock rates on a shared machine mostly say that).
                        "per_cpu_second": round(added / (cpu + db_cpu), 1) if cpu > 0 else None,
                    }
                )
            out["databases"][kind] = {
                "seeded": vars(seeded),
                "runs": samples,
            }
    if "postgres" not in kinds:
        out["note"] = "PostgreSQL not reachable: only SQLite measured"
    return out
