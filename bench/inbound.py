"""Inbound: signed Twilio webhooks against the real web app (`python -m worker.cli web`,
`BENCH_WEB_WORKERS` processes, default CHECKIN_WEB_WORKERS' default), with the urgent worker
and beat running and processing every reply.

Two phases on one running system, the target's first:
- latency at the target rate (what the target means): requests are posted on a fixed schedule
  of 300 per second whatever the answers (open loop: a request whose time has come goes out on
  an idle keep-alive connection or a new one); each latency is measured from the request's
  scheduled time, so a stall, or the client itself falling behind, counts against the app in
  full (no coordinated omission);
- capacity (an extra figure): 16 keep-alive connections post as fast as the app answers (closed
  loop), once the worker has worked off the first phase's replies.

The client is one asyncio thread posting pre-serialised requests (~0.1 ms of CPU a request), so
that it takes little of the two cores the system under test runs on; its CPU time, every
process's, and the machine's load average are reported with each phase.

Nothing lost: every request must be answered 200; afterwards every MessageSid answered 200 must
be a stored row, and every stored row processed by the worker (within two minutes of each
phase). Replies are ordinary answers ("7", "4 6", ...) from known patients, not crisis texts.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from sqlalchemy import func, select

from bench.harness import log, stack
from bench.seed import phone, seed_patients
from bench.stats import percentile
from bench.system import CpuMeter, driver_runtime, start_system, utcnow
from bench.webhooks import (
    FAILURES,
    Signed,
    closed_loop_run,
    open_loop_run,
    signed_inbound,
    start_web,
)
from worker.store.models import InboundMessage

TARGET_RATE = 300
PATIENTS = 1000
TEXTS = ("7", "4", "6 3", "8", "5", "2 7", "9", "ok thanks")


def _requests(public: str, token: str, n: int, offset: int) -> list[Signed]:
    return [
        signed_inbound(public, token, phone(1 + (offset + i) % PATIENTS), TEXTS[i % len(TEXTS)])
        for i in range(n)
    ]


def closed_loop(port: int, reqs: list[Signed], connections: int = 16) -> dict[str, Any]:
    latencies, statuses, elapsed = closed_loop_run(port, reqs, connections)
    ok = sum(1 for s in statuses if s == 200)
    return {
        "requests": len(reqs),
        "connections": connections,
        "seconds": round(elapsed, 2),
        "per_second": round(ok / elapsed, 1),
        "ok": ok,
        "errors": len(statuses) - ok,
        **_latency(latencies),
    }


def open_loop(port: int, reqs: list[Signed], rate: float) -> dict[str, Any]:
    latencies, statuses, elapsed = open_loop_run(port, reqs, rate)
    ok = sum(1 for s in statuses if s == 200)
    return {
        "requests": len(reqs),
        "offered_per_second": rate,
        "seconds": round(elapsed, 2),
        "achieved_per_second": _answer_rate(latencies, statuses, rate),
        "ok": ok,
        "errors": len(statuses) - ok,
        **_latency(latencies),
    }


def _answer_rate(latencies: list[float], statuses: list[int], rate: float) -> float:
    """Answers per second: the slope of the answers' times (each request's scheduled time plus
    its latency, sorted) against their count, by least squares. An app that keeps pace answers
    at the offered rate whatever its latency; one that falls behind spreads its answers out.
    (Answers divided by first-to-last seconds would move with the first and last requests' own
    latencies.) At most the offered rate: above it means latencies fell during the run (a slow
    start worked off), not more answers than requests."""
    pairs = enumerate(zip(latencies, statuses, strict=True))
    done = sorted(i / rate + lat for i, (lat, status) in pairs if status == 200)
    if len(done) < 2:
        return 0.0
    slope, _ = statistics.linear_regression(range(len(done)), done)
    return round(min(rate, 1 / slope), 1)


def _since(cpu: float) -> float:
    return round(time.process_time() - cpu, 2)


def _latency(values: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values]
    return {
        "p50_ms": round(percentile(ms, 50) or 0.0, 1),
        "p99_ms": round(percentile(ms, 99) or 0.0, 1),
        "max_ms": round(max(ms) if ms else 0.0, 1),
    }


def _stored(url: str, sids: set[str]) -> tuple[int, int]:
    rt = driver_runtime(url)
    try:
        with rt.engine.connect() as conn:
            rows = conn.execute(
                select(InboundMessage.provider_sid, InboundMessage.processed_at)
            ).all()
            total = conn.execute(select(func.count()).select_from(InboundMessage)).scalar() or 0
    finally:
        rt.close()
    stored = {sid for sid, _ in rows} & sids
    processed = sum(1 for sid, at in rows if at is not None and sid in sids)
    assert total >= len(stored)
    return len(stored), processed


def _phase(st: Any, fn: Any, *args: Any) -> dict[str, Any]:
    """Run one load phase; add the CPU seconds of every process and the load average."""
    meter = CpuMeter(st)
    load_before = os.getloadavg()[0]
    meter.start()
    driver = time.process_time()
    result: dict[str, Any] = fn(*args)
    result["cpu_seconds"] = {**meter.stop(), "load generator": _since(driver)}
    result["load_average_1m"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    return result


def _drain(url: str, sids: set[str], timeout: float = 120) -> tuple[int, int, float]:
    """Wait until the worker has processed every stored reply of `sids` (at most `timeout`):
    (stored, processed, seconds waited)."""
    started = time.monotonic()
    stored, processed = _stored(url, sids)
    while processed < stored and time.monotonic() - started < timeout:
        time.sleep(1)
        stored, processed = _stored(url, sids)
    return stored, processed, round(time.monotonic() - started, 1)


def run(quick: bool, run_index: int, kind: str) -> dict[str, Any]:
    n_closed = 1000 if quick else 6000
    seconds_open = 4 if quick else 20
    web_processes = int(os.environ.get("BENCH_WEB_WORKERS", "0")) or None
    FAILURES.clear()
    with stack(kind, 0.0) as st:
        seed_patients(st.db_url, range(1, PATIENTS + 1), utcnow())
        start_system(st, workers=("urgent", "beat"))
        port, public = start_web(st, web_processes)
        token = st.emulator.auth_token
        warm = _requests(public, token, 50, 0)
        closed_loop(port, warm, connections=4)  # first requests import and connect: not measured
        opened = _requests(public, token, TARGET_RATE * seconds_open, 50)
        closed = _requests(public, token, n_closed, 50 + len(opened))
        log(f"inbound run {run_index}: open loop at {TARGET_RATE}/s for {seconds_open}s")
        at_rate = _phase(st, open_loop, port, opened, TARGET_RATE)
        log(
            f"  achieved {at_rate['achieved_per_second']}/s, p50 {at_rate['p50_ms']} ms, "
            f"p99 {at_rate['p99_ms']} ms, errors {at_rate['errors']} "
            f"(load average {at_rate['load_average_1m']}); CPU s: {at_rate['cpu_seconds']}"
        )
        first = {r.sid for r in warm + opened}
        *_, at_rate["worker_caught_up_after_seconds"] = _drain(st.db_url, first)
        log(f"inbound run {run_index}: closed loop, {n_closed} requests")
        cap = _phase(st, closed_loop, port, closed)
        log(
            f"  {cap['per_second']}/s, p50 {cap['p50_ms']} ms, p99 {cap['p99_ms']} ms "
            f"(load average {cap['load_average_1m']}); CPU s: {cap['cpu_seconds']}"
        )
        sids = first | {r.sid for r in closed}
        answered = cap["ok"] + at_rate["ok"] + len(warm)
        stored, processed, _ = _drain(st.db_url, sids)
        peaks = st.procs.peaks()
    out = {
        "database": kind,
        "web_processes": web_processes or "default",
        "capacity": cap,
        "at_target_rate": at_rate,
        "sent": len(sids),
        "answered_200": answered,
        "stored": stored,
        "processed": processed,
        "lost": len(sids) - stored,
        "client_failures": dict(FAILURES),
        "peak_mb": peaks,
    }
    log(f"  {len(sids)} sent, {stored} stored, {processed} processed; client: {dict(FAILURES)}")
    return out
