"""Where the time goes: stdlib profiling of the three paths whose targets are at risk.

- `send`: the real `send_many` in this process, one thread, on PostgreSQL (or SQLite), against
  the emulator at 0 ms: CPU and wall time per message measured without the profiler, then a
  cProfile run for the breakdown; SQL statements and round trips counted with SQLAlchemy's
  `before_cursor_execute` event.
- `plan`: the real `plan(rt, now)` on a 5,000-patient clinic, the same way.
- `web`: the real web app (`python -m cProfile -m worker.cli web`) under the inbound benchmark's
  closed-loop load, stopped with SIGINT so the profile is written.

Each breakdown groups the profile's own-time (tottime) by library, so the report can say
"x % SQLAlchemy, y % waiting on PostgreSQL in psycopg, ..." without a sampling profiler.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import signal
import tempfile
import time
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.harness import database, free_port, log, stack, wait_for
from bench.planning import _runtime as plan_runtime
from bench.seed import release, seed_clinic, seed_patients
from bench.system import seed_due, start_system, utcnow
from worker.config import Settings
from worker.services.outbound.dispatch import claim_due
from worker.services.outbound.plan import plan
from worker.services.outbound.send import send_many
from worker.services.runtime import Runtime, build_runtime

#: The bulk tasks' chunk (CHECKIN_SEND_CHUNK_SIZE's default).
CHUNK = Settings.model_fields["send_chunk_size"].default

CATEGORIES = (
    ("sqlalchemy", "SQLAlchemy (ORM and Core)"),
    ("psycopg", "psycopg (incl. waiting on PostgreSQL)"),
    ("sqlite3", "sqlite3 (incl. waiting on the file lock)"),
    ("dateutil", "dateutil (RRULE expansion)"),
    ("/twilio/", "twilio SDK"),
    ("requests", "requests / urllib3 / http.client / sockets"),
    ("urllib3", "requests / urllib3 / http.client / sockets"),
    ("http/client", "requests / urllib3 / http.client / sockets"),
    ("socket", "requests / urllib3 / http.client / sockets"),
    ("select", "requests / urllib3 / http.client / sockets"),
    ("jinja2", "jinja2 (rendering)"),
    ("redis", "redis / kombu / celery (broker)"),
    ("kombu", "redis / kombu / celery (broker)"),
    ("celery", "redis / kombu / celery (broker)"),
    ("starlette", "FastAPI / Starlette / uvicorn"),
    ("fastapi", "FastAPI / Starlette / uvicorn"),
    ("uvicorn", "FastAPI / Starlette / uvicorn"),
    ("h11", "FastAPI / Starlette / uvicorn"),
    ("multipart", "FastAPI / Starlette / uvicorn"),
    ("pydantic", "pydantic"),
    ("zoneinfo", "zoneinfo / datetime"),
    ("/worker/", "worker (project code)"),
)


def _category(filename: str, name: str) -> str:
    where = f"{filename} {name}"
    for needle, label in CATEGORIES:
        if needle in where:
            return label
    return "Python stdlib / other"


def _import_time(filename: str, name: str) -> bool:
    """Module loading (a profiled process's start-up), left out of the breakdown."""
    return filename.startswith("<frozen") or any(
        n in name for n in ("marshal.loads", "builtins.compile", "__build_class__", "builtins.exec")
    )


def breakdown(stats: pstats.Stats, top: int = 12) -> dict[str, Any]:
    """Own time by library (share of the total) and the functions with the most own time."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_cat: dict[str, float] = defaultdict(float)
    rows = []
    total = 0.0
    for (filename, line, name), (_cc, _nc, tt, ct, _callers) in raw.items():
        if _import_time(filename, name):
            continue
        by_cat[_category(filename, name)] += tt
        total += tt
        short = filename.split("site-packages/")[-1].replace(str(Path.cwd()) + "/", "")
        rows.append((tt, ct, f"{short}:{line}({name})"))
    rows.sort(reverse=True)
    return {
        "by_library": {
            k: round(100 * v / total, 1) for k, v in sorted(by_cat.items(), key=lambda kv: -kv[1])
        },
        "top_own_time": [
            {"function": f, "own_s": round(tt, 3), "cumulative_s": round(ct, 3)}
            for tt, ct, f in rows[:top]
        ],
        "profiled_seconds": round(total, 2),
    }


class SqlCounter:
    def __init__(self, rt: Runtime) -> None:
        self.statements = 0
        event.listen(rt.engine, "before_cursor_execute", self._count)

    def _count(self, *args: Any, **kwargs: Any) -> None:
        self.statements += 1


# ---------------------------------------------------------------- send


def _send_settings(st: Any) -> Settings:
    env = st.env()
    pacing_off: dict[str, Any] = {"sms_rate": 0} if "sms_rate" in Settings.model_fields else {}
    return Settings(
        _env_file=None,
        database_url=st.db_url,
        broker_url=st.redis_url,
        sms_backend="twilio",
        twilio_account_sid=env["TWILIO_ACCOUNT_SID"],
        twilio_auth_token=env["TWILIO_AUTH_TOKEN"],
        twilio_from_number=env["TWILIO_FROM_NUMBER"],
        twilio_api_url=env["TWILIO_API_URL"],
        **pacing_off,
    )


def _send_in_chunks(rt: Runtime, ids: list[int], size: int = CHUNK) -> dict[str, int]:
    """As a bulk task does: chunks of the configured size, each sent in this one thread."""
    counts: dict[str, int] = {}
    for i in range(0, len(ids), size):
        for outcome, k in send_many(rt, ids[i : i + size], utcnow, None).items():
            counts[outcome] = counts.get(outcome, 0) + k
    return counts


def profile_send(kind: str, n: int) -> dict[str, Any]:
    with stack(kind, 0.0) as st:
        seed_due(st, 3 * n)
        release(st.db_url, utcnow())
        rt = build_runtime(_send_settings(st))
        try:
            ids = [i for i, _ in claim_due(rt, utcnow(), 3 * n)]
            _send_in_chunks(rt, ids[:n])  # warm: imports, connections, templates
            counter = SqlCounter(rt)
            wall, cpu = time.perf_counter(), time.process_time()
            outcomes = _send_in_chunks(rt, ids[n : 2 * n])
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            statements = counter.statements
            prof = cProfile.Profile()
            prof.enable()
            _send_in_chunks(rt, ids[2 * n :])
            prof.disable()
        finally:
            rt.close()
    return {
        "database": kind,
        "messages": n,
        "outcomes": outcomes,
        "wall_ms_per_message": round(1000 * wall / n, 2),
        "cpu_ms_per_message": round(1000 * cpu / n, 2),
        "sql_statements_per_message": round(statements / n, 1),
        **breakdown(pstats.Stats(prof)),
    }


# ---------------------------------------------------------------- plan


def profile_plan(kind: str, patients: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="checkin-bench-prof-") as tmp:
        with database(kind, Path(tmp)) as url:
            now = datetime.now(UTC).replace(microsecond=0)
            seed_clinic(url, patients, now)
            rt = plan_runtime(url)
            try:
                counter = SqlCounter(rt)
                wall, cpu = time.perf_counter(), time.process_time()
                added = plan(rt, now)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                statements = counter.statements
            finally:
                rt.close()
        with database(kind, Path(tmp)) as url:
            seed_clinic(url, patients, now)
            rt = plan_runtime(url)
            try:
                prof = cProfile.Profile()
                prof.enable()
                plan(rt, now)
                prof.disable()
            finally:
                rt.close()
    return {
        "database": kind,
        "patients": patients,
        "occurrences": added,
        "per_second": round(added / wall, 1),
        "cpu_ms_per_occurrence": round(1000 * cpu / added, 3),
        "sql_statements_per_occurrence": round(statements / added, 4),
        **breakdown(pstats.Stats(prof)),
    }


# ---------------------------------------------------------------- web


def profile_web(kind: str, requests: int) -> dict[str, Any]:
    from bench.inbound import PATIENTS, _requests, closed_loop

    with stack(kind, 0.0) as st:
        seed_patients(st.db_url, range(1, PATIENTS + 1), utcnow())
        start_system(st, workers=("urgent",))
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        out_path = st.workdir / "web.prof"
        proc = st.procs.start(
            "web-profiled",
            ["-m", "cProfile", "-o", str(out_path), "-m", "worker.cli", "web", "--port", str(port)],
            env={**st.procs.env, "CHECKIN_PUBLIC_URL": public},
        )

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(public + "/healthz", timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        wait_for(healthy, 60, "the profiled web app")
        reqs = _requests(public, st.emulator.auth_token, requests, 0)
        load = closed_loop(port, reqs)
        os.killpg(proc.popen.pid, signal.SIGINT)
        proc.popen.wait(60)
        stats = pstats.Stats(str(out_path))
    result = {"database": kind, "load": load, **breakdown(stats)}
    # The handler's own time per request on the event loop's thread. cProfile sees only that
    # thread: storing the row and the broker hand-off run in the webhook thread pool
    # (worker/web/webhooks.py), so the loop is free meanwhile and they do not show here.
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    handler = sum(v[3] for k, v in raw.items() if k[2] in ("inbound_sms", "_inbound_sms"))
    result["handler_ms_per_request"] = round(1000 * handler / requests, 2)
    return result


def run(quick: bool, run_index: int, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    log("profile: send path")
    out["send"] = profile_send(kind, 100 if quick else 400)
    log(f"  {out['send']['cpu_ms_per_message']} ms CPU per message")
    log("profile: planning")
    out["plan"] = profile_plan(kind, 1000 if quick else 5000)
    log(f"  {out['plan']['cpu_ms_per_occurrence']} ms CPU per occurrence")
    log("profile: web app under inbound load")
    out["web"] = profile_web(kind, 500 if quick else 2000)
    log(f"  handler {out['web']['handler_ms_per_request']} ms per request")
    return out
