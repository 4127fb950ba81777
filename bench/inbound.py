"""Inbound: signed Twilio webhooks against the real web app (`python -m worker.cli web`, one
uvicorn process), with the urgent worker and beat running and processing every reply.

Two phases on one running system:
- capacity: 16 client threads, each with a keep-alive connection, post as fast as the app
  answers (closed loop): requests per second, with the latency each request saw;
- latency at the target rate: requests are posted on a fixed schedule of 300 per second (open
  loop, 32 client threads); each latency is measured from the request's scheduled time, so a
  stall counts against the app in full (no coordinated omission).

Nothing lost: every request must be answered 200; afterwards every MessageSid answered 200 must
be a stored row, and every stored row processed by the worker (within two minutes).
Replies are ordinary answers ("7", "4 6", ...) from known patients, not crisis texts.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from sqlalchemy import func, select

from bench.harness import log, stack
from bench.seed import phone, seed_patients
from bench.stats import percentile
from bench.system import driver_runtime, start_system, utcnow
from bench.webhooks import Client, Signed, signed_inbound, start_web
from worker.store.models import InboundMessage

TARGET_RATE = 300
PATIENTS = 1000
TEXTS = ("7", "4", "6 3", "8", "5", "2 7", "9", "ok thanks")


def _requests(public: str, token: str, n: int, offset: int) -> list[Signed]:
    return [
        signed_inbound(public, token, phone(1 + (offset + i) % PATIENTS), TEXTS[i % len(TEXTS)])
        for i in range(n)
    ]


def closed_loop(port: int, reqs: list[Signed], threads: int = 16) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    it = iter(reqs)

    def worker() -> None:
        client = Client(port)
        mine: list[tuple[float, int]] = []
        try:
            while True:
                with lock:
                    req = next(it, None)
                if req is None:
                    break
                start = time.perf_counter()
                status = client.post(req)
                mine.append((time.perf_counter() - start, status))
        finally:
            client.close()
            with lock:
                latencies.extend(t for t, _ in mine)
                statuses.extend(s for _, s in mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    ok = sum(1 for s in statuses if s == 200)
    return {
        "requests": len(reqs),
        "client_threads": threads,
        "seconds": round(elapsed, 2),
        "per_second": round(ok / elapsed, 1),
        "ok": ok,
        "errors": len(statuses) - ok,
        **_latency(latencies),
    }


def open_loop(port: int, reqs: list[Signed], rate: float, threads: int = 32) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    counter = itertools.count()
    t0 = time.perf_counter() + 0.2
    finished = [0.0]

    def worker() -> None:
        client = Client(port)
        mine: list[tuple[float, int]] = []
        try:
            while True:
                i = next(counter)
                if i >= len(reqs):
                    break
                due = t0 + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                status = client.post(reqs[i])
                done = time.perf_counter()
                mine.append((done - due, status))
        finally:
            client.close()
            with lock:
                latencies.extend(t for t, _ in mine)
                statuses.extend(s for _, s in mine)
                finished[0] = max(finished[0], time.perf_counter())

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    ok = sum(1 for s in statuses if s == 200)
    elapsed = finished[0] - t0
    return {
        "requests": len(reqs),
        "offered_per_second": rate,
        "client_threads": threads,
        "seconds": round(elapsed, 2),
        "achieved_per_second": round(ok / elapsed, 1),
        "ok": ok,
        "errors": len(statuses) - ok,
        **_latency(latencies),
    }


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


def run(quick: bool, run_index: int, kind: str) -> dict[str, Any]:
    n_closed = 1000 if quick else 6000
    seconds_open = 4 if quick else 20
    with stack(kind, 0.0) as st:
        seed_patients(st.db_url, range(1, PATIENTS + 1), utcnow())
        start_system(st, workers=("urgent", "beat"))
        port, public = start_web(st)
        token = st.emulator.auth_token
        warm = _requests(public, token, 50, 0)
        closed_loop(port, warm, threads=4)  # first requests import and connect: not measured
        closed = _requests(public, token, n_closed, 50)
        opened = _requests(public, token, TARGET_RATE * seconds_open, 50 + n_closed)
        log(f"inbound run {run_index}: closed loop, {n_closed} requests")
        cap = closed_loop(port, closed)
        log(f"  {cap['per_second']}/s, p50 {cap['p50_ms']} ms, p99 {cap['p99_ms']} ms")
        time.sleep(2)
        log(f"inbound run {run_index}: open loop at {TARGET_RATE}/s for {seconds_open}s")
        at_rate = open_loop(port, opened, TARGET_RATE)
        log(
            f"  achieved {at_rate['achieved_per_second']}/s, p50 {at_rate['p50_ms']} ms, "
            f"p99 {at_rate['p99_ms']} ms, errors {at_rate['errors']}"
        )
        sids = {r.sid for r in warm + closed + opened}
        answered = cap["ok"] + at_rate["ok"] + len(warm)
        deadline = time.monotonic() + 120
        stored, processed = _stored(st.db_url, sids)
        while processed < stored and time.monotonic() < deadline:
            time.sleep(1)
            stored, processed = _stored(st.db_url, sids)
        peaks = st.procs.peaks()
    out = {
        "database": kind,
        "capacity": cap,
        "at_target_rate": at_rate,
        "sent": len(sids),
        "answered_200": answered,
        "stored": stored,
        "processed": processed,
        "lost": len(sids) - stored,
        "peak_mb": peaks,
    }
    log(f"  {len(sids)} sent, {stored} stored, {processed} processed")
    return out
