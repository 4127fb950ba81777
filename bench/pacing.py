"""Pacing: the real workers with `CHECKIN_SMS_RATE=50` send a backlog of due check-ins; the
emulator timestamps every accepted message on arrival, and we count them in every one-second
window (sliding: every interval [t, t + 1 s), not only whole clock seconds) against the rate.

Two variants:
- `share_0`: `CHECKIN_URGENT_SHARE=0`, so this bulk-only traffic may use the whole 50/s: the
  target (never above 50 in any window, average at least 45) is checked here;
- `default_share`: the default `CHECKIN_URGENT_SHARE` (0.2) keeps a fifth of the rate for urgent
  messages, so bulk-only traffic should stay at or under 40/s.

The emulator answers after 200 ms, a real provider's pace. Every check-in body is one segment,
so messages and segments are the same count here. The average counts the arrivals in the whole
seconds from the first arrival (the last, partial second left out): the limiter grants a
second's budget in a burst, so a short run is quantised to whole bursts, and longer runs (the
full size) make that error small. The most in any 100 ms shows how bursty the paced traffic is. Skipped, saying so, when the worker
has no `sms_rate` setting.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import log, stack
from bench.seed import release
from bench.stats import max_in_window, per_second
from bench.system import CpuMeter, drain, seed_due, start_system, summarize, utcnow
from worker.config import Settings

RATE = 50
LATENCY_MS = 200.0


def supported() -> bool:
    return "sms_rate" in Settings.model_fields


def paced_run(kind: str, n: int, urgent_share: str | None) -> dict[str, Any]:
    env = {"CHECKIN_SMS_RATE": str(RATE)}
    if urgent_share is not None:
        env["CHECKIN_URGENT_SHARE"] = urgent_share
    with stack(kind, LATENCY_MS) as st:
        seed_due(st, n)
        start_system(st, env=env)
        meter = CpuMeter(st)
        meter.start()
        t0 = time.time()
        release(st.db_url, utcnow())
        times, _ = drain(st, n, t0, timeout=120 + 3 * n / RATE)
        result = summarize(n, t0, times, meter.stop(), st)
    ordered = sorted(times)
    whole = int(ordered[-1] - ordered[0]) if ordered else 0
    in_whole = sum(1 for t in ordered if t < ordered[0] + whole)
    result.update(
        {
            "rate_set": RATE,
            "urgent_share": urgent_share if urgent_share is not None else "default",
            "max_in_any_1s_window": max_in_window(ordered),
            # Over the whole seconds from the first arrival (the last, partial one left out).
            "average_per_second": round(in_whole / whole, 2) if whole > 0 else None,
            # How bursty the paced traffic is: the most in any 100 ms.
            "max_in_any_100ms_window": max_in_window(ordered, 0.1),
            "per_clock_second": per_second(ordered),
        }
    )
    return result


def run(quick: bool, run_index: int, kind: str) -> dict[str, Any]:
    if not supported():
        return {"skipped": "the worker has no CHECKIN_SMS_RATE setting yet"}
    n = 500 if quick else 1500
    out: dict[str, Any] = {"database": kind, "messages": n, "latency_ms": LATENCY_MS}
    for label, share in (("share_0", "0"), ("default_share", None)):
        log(f"pacing run {run_index}: {label}, {n} messages at {RATE}/s")
        out[label] = paced_run(kind, n, share)
        r = out[label]
        log(
            f"  max {r['max_in_any_1s_window']} in any 1 s window, "
            f"average {r['average_per_second']}/s"
        )
    return out
