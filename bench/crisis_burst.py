"""Crisis during a burst of replies (`--only crisis_during_burst`): 1,000 routine replies are
posted to the webhook at once (16 keep-alive connections, as fast as the web app answers), then,
while the urgent worker is still working through them, crisis texts follow every 0.25 s from
other patients. For each crisis text: from the moment its signed webhook is posted to the moment
the emulator (200 ms, a real provider's pace) answered 201 to the crisis reply to the patient.

The whole path is real: web app (recognises crisis language with the worker's own detector) →
InboundMessage row → `checkin.inbound` on the `crisis` queue (Redis) → the urgent worker, which
reads `crisis` ahead of `urgent` → the crisis reply and the page through the real SDK. Without
the crisis queue a crisis text would wait behind every routine reply already queued (at ~100 a
second per urgent worker, seconds). The result also records how many routine replies were still
unprocessed when the last crisis reply went out: the crisis texts overtook those.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import func, select

from bench.harness import log, stack
from bench.seed import phone, seed_patients
from bench.system import CpuMeter, driver_runtime, latency_summary, start_system, utcnow
from bench.webhooks import Client, closed_loop_run, signed_inbound, start_web
from worker.store.models import InboundMessage

LATENCY_MS = 200.0
CRISIS_TEXT = "I want to end my life"
ROUTINE_TEXTS = ("7", "4 6", "ok thanks", "5", "feeling a bit better today", "8 3")
TARGET_P99_MS = 2000.0


def _unprocessed(url: str) -> int:
    rt = driver_runtime(url)
    try:
        with rt.sessions() as session:
            n = session.scalar(select(func.count()).where(InboundMessage.processed_at.is_(None)))
        return int(n or 0)
    finally:
        rt.close()


def run(quick: bool, run_index: int, kind: str) -> dict[str, Any]:
    burst = 200 if quick else 1_000
    crises = 5 if quick else 20
    with stack(kind, LATENCY_MS) as st:
        seed_patients(st.db_url, range(1, burst + crises + 1), utcnow())
        start_system(st, workers=("urgent", "beat"))
        port, public = start_web(st)
        token = st.emulator.auth_token
        routine = [
            signed_inbound(public, token, phone(1 + i), ROUTINE_TEXTS[i % len(ROUTINE_TEXTS)])
            for i in range(burst)
        ]
        crisis_phones = [phone(burst + 1 + k) for k in range(crises)]
        crisis = [signed_inbound(public, token, p, CRISIS_TEXT) for p in crisis_phones]
        meter = CpuMeter(st)
        meter.start()
        seen = st.emulator.accepted()
        log(f"crisis-during-burst run {run_index}: {burst} routine replies, then {crises} crises")
        t_burst = time.time()
        _, statuses, burst_seconds = closed_loop_run(port, routine, 16)
        if any(s != 200 for s in statuses):
            raise RuntimeError(f"the burst had non-200 answers: {sorted(set(statuses))}")
        backlog_at_first_crisis = _unprocessed(st.db_url)
        sent_at: dict[str, float] = {}
        errors: list[int] = []

        def post_crises() -> None:
            client = Client(port)
            try:
                for p, req in zip(crisis_phones, crisis, strict=True):
                    sent_at[p] = time.time()
                    status = client.post(req)
                    if status != 200:
                        errors.append(status)
                    time.sleep(0.25)
            finally:
                client.close()

        poster = threading.Thread(target=post_crises)
        poster.start()
        replies: dict[str, float] = {}
        deadline = time.monotonic() + 120
        while len(replies) < crises and time.monotonic() < deadline:
            new = st.emulator.accepts(since=seen)
            seen += len(new)
            for a in new:
                if a.to in sent_at and a.to not in replies:
                    replies[a.to] = a.answered - sent_at[a.to]
            time.sleep(0.02)
        poster.join()
        routine_left = _unprocessed(st.db_url)
        drained = time.monotonic() + 180
        while _unprocessed(st.db_url) and time.monotonic() < drained:
            time.sleep(0.5)
        burst_done_seconds = time.time() - t_burst
        cpu = meter.stop()
    if errors:
        raise RuntimeError(f"crisis webhooks answered {errors}")
    summary = latency_summary(list(replies.values()))
    out: dict[str, Any] = {
        "database": kind,
        "burst": burst,
        "crises": crises,
        "latency_ms": LATENCY_MS,
        "burst_posted_seconds": round(burst_seconds, 2),
        "routine_unprocessed_at_first_crisis": backlog_at_first_crisis,
        "routine_unprocessed_when_last_crisis_answered": routine_left,
        "burst_processed_seconds": round(burst_done_seconds, 1),
        "crisis_reply": summary,
        "missing": crises - len(replies),
        "target_p99_ms": TARGET_P99_MS,
        "cpu_seconds": cpu,
    }
    log(
        f"  crisis reply p50 {summary['p50_ms']} ms p99 {summary['p99_ms']} ms; "
        f"{backlog_at_first_crisis} routine unprocessed at the first crisis, "
        f"{routine_left} when the last was answered"
    )
    return out
