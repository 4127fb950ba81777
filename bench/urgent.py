"""Urgent latency during a bulk backlog: while 20,000 check-ins are being sent (emulator at
200 ms), patients text a crisis message one after another. For each: from the moment the signed
webhook is posted to the web app, to the moment the emulator answered 201 to (a) the crisis
reply to the patient and (b) the page to the on-call clinician. p50 and p99 over all of them.

The whole path is real: web app → InboundMessage row → `checkin.inbound` task on the urgent
queue (Redis) → the urgent worker parses it, raises the follow-up and sends both messages at
once through the real SDK. The result records how much of the backlog was still waiting when the
last crisis was answered (if the backlog ran dry first, the measurement says so).
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import ONCALL_PHONE, Stack, log, stack
from bench.seed import phone, release, seed_patients
from bench.system import CpuMeter, latency_summary, seed_due, start_system, status_counts, utcnow
from bench.webhooks import Client, signed_inbound, start_web

LATENCY_MS = 200.0
CRISIS_TEXT = "I want to end my life"


def _wait_both(
    st: Stack, seen: int, patient: str, t_sent: float, timeout: float = 60.0
) -> tuple[float | None, float | None, int]:
    """Poll the emulator's new accepts for the reply to `patient` and a page after t_sent."""
    reply = page = None
    deadline = time.monotonic() + timeout
    while (reply is None or page is None) and time.monotonic() < deadline:
        new = st.emulator.accepts(since=seen)
        seen += len(new)
        for a in new:
            if a.to == patient and reply is None:
                reply = a.answered - t_sent
            elif a.to == ONCALL_PHONE and page is None and a.arrived >= t_sent:
                page = a.answered - t_sent
        if reply is None or page is None:
            time.sleep(0.02)
    return reply, page, seen


def _ms(v: float | None) -> float | None:
    return None if v is None else round(1000 * v, 1)


def run(quick: bool, run_index: int, kind: str) -> dict[str, Any]:
    backlog = 2_000 if quick else 20_000
    crises = 8 if quick else 40
    with stack(kind, LATENCY_MS) as st:
        seed_due(st, backlog)
        seed_patients(st.db_url, range(backlog + 1, backlog + crises + 2), utcnow())
        start_system(st)
        port, public = start_web(st)
        meter = CpuMeter(st)
        meter.start()
        release(st.db_url, utcnow())
        while st.emulator.accepted() < min(200, backlog // 10):
            st.procs.check_alive()
            time.sleep(0.1)
        log(f"urgent run {run_index}: bulk sending under way; {crises} crisis texts follow")
        client = Client(port)
        replies: list[float] = []
        pages: list[float] = []
        missing = 0
        seen = 0
        accepted_at_start = st.emulator.accepted()
        t_start = time.time()
        first: dict[str, float | None] = {}
        try:
            for k in range(crises + 1):
                patient = phone(backlog + 1 + k)
                req = signed_inbound(public, st.emulator.auth_token, patient, CRISIS_TEXT)
                t_sent = time.time()
                status = client.post(req)
                if status != 200:
                    raise RuntimeError(f"the crisis webhook answered {status}")
                reply, page, seen = _wait_both(st, seen, patient, t_sent)
                if k == 0:
                    # The first crisis after the workers start pays for lazy imports, template
                    # compilation and new connections: reported apart from the steady state.
                    first = {"reply_ms": _ms(reply), "page_ms": _ms(page)}
                elif reply is None or page is None:
                    missing += 1
                else:
                    replies.append(reply)
                    pages.append(page)
                time.sleep(0.25)
        finally:
            client.close()
        accepted_at_end = st.emulator.accepted()
        t_end = time.time()
        statuses = status_counts(st.db_url)
        cpu = meter.stop()
        peaks = st.procs.peaks()
    bulk_pending = sum(statuses.get(s, 0) for s in ("scheduled", "queued", "sending"))
    out: dict[str, Any] = {
        "database": kind,
        "backlog": backlog,
        "crises": crises,
        "latency_ms": LATENCY_MS,
        "crisis_reply": latency_summary(replies),
        "page": latency_summary(pages),
        "both": latency_summary([max(r, p) for r, p in zip(replies, pages, strict=True)]),
        "missing": missing,
        "first_after_start": first,
        "bulk_accepted_before_first_crisis": accepted_at_start,
        "bulk_pending_after_last_crisis": bulk_pending,
        "backlog_outlasted_measurement": bulk_pending > 0,
        "bulk_per_second_during": round(
            (accepted_at_end - accepted_at_start - 2 * len(replies)) / max(t_end - t_start, 1e-9), 1
        ),
        "cpu_seconds": cpu,
        "peak_mb": peaks,
    }
    log(
        f"  crisis reply p50 {out['crisis_reply']['p50_ms']} ms p99 {out['crisis_reply']['p99_ms']} ms; "
        f"page p99 {out['page']['p99_ms']} ms; {bulk_pending} bulk still pending"
    )
    return out
