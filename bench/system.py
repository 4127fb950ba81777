"""The real system on one machine, for the end-to-end benchmarks: an `urgent` worker, a `bulk`
worker and beat (`python -m worker.cli ...`), on the stack's database, Redis and emulator.

Layout (the compose file's shape; the numbers are the benchmark's configuration, overridable
from the environment, and reported with every result):

- `worker -Q urgent -c 4` (dispatch runs here, and inbound replies);
- `BENCH_BULK_PROCESSES` (default 2, one per core) times `worker -Q bulk -c
  BENCH_BULK_CONCURRENCY` (default 8), each process sending up to `BENCH_SEND_CONCURRENCY`
  (default 160 = 8 chunks of 20) messages at a time (`CHECKIN_SEND_CONCURRENCY`);
- pacing off (`CHECKIN_SMS_RATE=BENCH_SMS_RATE`, default 0) except in the pacing benchmark;
- `beat` with `CHECKIN_TICK_SECONDS=1`.
"""

from __future__ import annotations

import io
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from bench.harness import (
    Stack,
    cpu_seconds,
    log,
    machine_cpu_seconds,
    pg_admin_url,
    ping_workers,
    postgres_backend_pids,
)
from bench.seed import park, seed_due_checkins
from bench.stats import percentile, sustained_rate
from worker.channels import Channels
from worker.channels.console import ConsoleEmail, ConsoleSms
from worker.config import Settings
from worker.services.outbound.plan import plan
from worker.services.runtime import Runtime, build_runtime
from worker.store.models import Message


def layout() -> dict[str, Any]:
    return {
        "urgent_worker_threads": 4,
        "bulk_worker_processes": int(os.environ.get("BENCH_BULK_PROCESSES", "2")),
        "bulk_worker_threads": int(os.environ.get("BENCH_BULK_CONCURRENCY", "8")),
        "send_concurrency": int(os.environ.get("BENCH_SEND_CONCURRENCY", "160")),
        "tick_seconds": 1,
        "dispatch_batch_size": int(os.environ.get("BENCH_DISPATCH_BATCH_SIZE", "500")),
        "send_chunk_size": int(os.environ.get("BENCH_SEND_CHUNK_SIZE", "20")),
        # Pacing off unless a benchmark sets it: the throughput benchmarks measure the pipeline,
        # not a sender's contract rate (the pacing benchmark sets 50/s).
        "sms_rate": os.environ.get("BENCH_SMS_RATE", "0"),
        "loglevel": "INFO",
    }


def db_kind() -> str:
    """PostgreSQL (production's database) unless BENCH_DB=sqlite or no server answers."""
    wanted = os.environ.get("BENCH_DB", "postgres")
    if wanted == "postgres" and pg_admin_url() is None:
        log("PostgreSQL not reachable: the end-to-end benchmarks run on SQLite")
        return "sqlite"
    return wanted


def utcnow() -> datetime:
    return datetime.now(UTC)


def driver_runtime(url: str, **overrides: Any) -> Runtime:
    """A runtime in the benchmark driver, for seeding and reading (console channels)."""
    settings = Settings(database_url=url, _env_file=None, **overrides)
    sink = io.StringIO()
    return build_runtime(
        settings, channels=Channels(ConsoleSms(sink), ConsoleEmail(sink)), pool_size=2
    )


def seed_due(st: Stack, n: int, first: int = 1) -> None:
    """n due check-ins planned by the real planner, then parked a day ahead until `release`."""
    now = utcnow()
    t = time.perf_counter()
    seed_due_checkins(st.db_url, n, now, first=first)
    rt = driver_runtime(st.db_url)
    try:
        added = plan(rt, now)
    finally:
        rt.close()
    if added != n:
        raise RuntimeError(f"planning made {added} rows, expected {n}")
    park(st.db_url, now)
    log(f"seeded and planned {n} due check-ins in {time.perf_counter() - t:.1f}s")


def start_system(
    st: Stack,
    workers: tuple[str, ...] = ("urgent", "bulk", "beat"),
    env: dict[str, str] | None = None,
) -> None:
    """Start the workers (and wait until they answer a ping), then beat. `env` is added to the
    processes' environment (and may override the layout's CHECKIN_SMS_RATE)."""
    lay = layout()
    st.procs.env = st.env(
        CHECKIN_TICK_SECONDS=str(lay["tick_seconds"]),
        CHECKIN_SEND_CONCURRENCY=str(lay["send_concurrency"]),
        CHECKIN_SEND_CHUNK_SIZE=str(lay["send_chunk_size"]),
        CHECKIN_DISPATCH_BATCH_SIZE=str(lay["dispatch_batch_size"]),
        **{"CHECKIN_SMS_RATE": lay["sms_rate"], **(env or {})},
    )
    nodes = 0
    if "urgent" in workers:
        st.procs.checkin(
            "worker-urgent", "worker", "-Q", "urgent", "-c", str(lay["urgent_worker_threads"]),
            "--name", "urgent", "--loglevel", lay["loglevel"],
        )  # fmt: skip
        nodes += 1
    if "bulk" in workers:
        for k in range(1, lay["bulk_worker_processes"] + 1):
            suffix = "" if lay["bulk_worker_processes"] == 1 else str(k)
            st.procs.checkin(
                f"worker-bulk{suffix}", "worker", "-Q", "bulk", "-c", str(lay["bulk_worker_threads"]),
                "--name", f"bulk{suffix}", "--loglevel", lay["loglevel"],
            )  # fmt: skip
            nodes += 1
    if nodes:
        ping_workers(st.redis_url, nodes)
    if "beat" in workers:
        st.procs.checkin(
            "beat", "beat", "--schedule-file", str(st.workdir / "beat-schedule"),
            "--loglevel", lay["loglevel"],
        )  # fmt: skip
        _settled(st, "beat")


def _settled(st: Stack, role: str, timeout: float = 20.0) -> None:
    """Wait until a process has finished starting (its CPU time stops climbing), so that its
    imports are not counted as the benchmark's work. Nothing is due yet, so nothing is lost."""
    deadline = time.monotonic() + timeout
    last = st.procs.cpu().get(role, 0.0)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = st.procs.cpu().get(role, 0.0)
        if now - last < 0.05:
            return
        last = now


def status_counts(url: str) -> dict[str, int]:
    rt = driver_runtime(url)
    try:
        with rt.engine.connect() as conn:
            rows = conn.execute(select(Message.status, func.count()).group_by(Message.status)).all()
    finally:
        rt.close()
    return {str(s): int(n) for s, n in rows}


@dataclass
class CpuMeter:
    """CPU seconds of each of our processes, the emulator, Redis, our database's PostgreSQL
    backends and the whole machine, between `start` and `stop`."""

    st: Stack
    before: dict[str, float] = field(default_factory=dict)

    def _read(self) -> dict[str, float]:
        out = dict(self.st.procs.cpu())
        out["emulator"] = cpu_seconds(self.st.emulator.pid) or 0.0
        if self.st.redis.proc is not None:
            out["redis-server"] = cpu_seconds(self.st.redis.proc.pid) or 0.0
        pg = [cpu_seconds(p) or 0.0 for p in postgres_backend_pids(self.st.db_url)]
        if pg:
            out["postgres (this database)"] = sum(pg)
        out["machine (all processes)"] = machine_cpu_seconds()
        return out

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> dict[str, float]:
        after = self._read()
        return {k: round(v - self.before.get(k, 0.0), 2) for k, v in after.items()}


def drain(
    st: Stack, n: int, t0: float, timeout: float, what: str = "messages"
) -> tuple[list[float], list[tuple[float, int]]]:
    """Poll the emulator until n messages are accepted (or the timeout); returns the accept
    times and the (time, accepted) samples."""
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    last_log = time.monotonic()
    while True:
        accepted = st.emulator.accepted()
        samples.append((time.time() - t0, accepted))
        if accepted >= n:
            break
        if time.monotonic() > deadline:
            log(f"timeout: {accepted} of {n} {what} accepted after {timeout:.0f}s")
            break
        st.procs.check_alive()
        if time.monotonic() - last_log > 10:
            log(f"  {accepted}/{n} accepted")
            last_log = time.monotonic()
        time.sleep(0.2)
    time.sleep(1.0)  # anything still in flight (a duplicate) would arrive now
    times = [a.arrived for a in st.emulator.accepts()]
    return times, samples


def summarize(
    n: int, t0: float, times: list[float], cpu: dict[str, float], st: Stack
) -> dict[str, Any]:
    accepted = len(times)
    last = max(times) if times else t0
    counts = Counter(a.to for a in st.emulator.accepts())
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    elapsed = last - t0
    out: dict[str, Any] = {
        "messages": n,
        "accepted": accepted,
        "duplicates": duplicates,
        "seconds_to_last": round(elapsed, 2),
        "first_accept_after": round(min(times) - t0, 2) if times else None,
        "per_second_total": round(accepted / elapsed, 1) if elapsed > 0 else None,
        "per_second_sustained": _round(sustained_rate(times)),
        "statuses": status_counts(st.db_url),
        "cpu_seconds": cpu,
        "peak_mb": st.procs.peaks(),
    }
    if accepted:
        out["cpu_ms_per_message"] = {
            k: round(1000 * v / accepted, 2) for k, v in cpu.items() if v > 0
        }
    return out


def _round(v: float | None, nd: int = 1) -> float | None:
    return None if v is None else round(v, nd)


def latency_summary(values: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50_ms": _round(percentile(ms, 50)),
        "p99_ms": _round(percentile(ms, 99)),
        "max_ms": _round(max(ms) if ms else None),
    }
