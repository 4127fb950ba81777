"""Dispatch end to end: due rows to messages accepted by the emulator, with worker, beat,
Redis, the database and the emulator all on this machine; the emulator answering after 0 ms and
after 200 ms (the real API's latency is 100-300 ms).

In the same run, for comparison:
- the emulator alone: a tight client loop (raw keep-alive HTTP from 4 threads) posting messages,
  which is the most the emulator process accepts on this machine;
- the simplest design (`bench.naive`: one Celery task per message, each with its own database
  connection and Twilio client) on the same rows, through the same emulator, on three pools:
  Celery's default (prefork, one process per core: at 200 ms bounded at processes / 0.2 s by
  construction), the threads pool with `-c 100` and the gevent pool with `-c 100` (what a Celery
  user would run for I/O-bound tasks; gevent only when installed: `pip install -e .[bench]`).

A measurement: n patients each get a due check-in, planned by the real planner and parked a day
ahead; the processes are started and answer a ping; then every row is made due at once (t0),
and the clock stops when the emulator has accepted all n. "Sustained" is the rate between the
10 % and 90 % arrivals (without the first tick and the tail); "total" is n / (last - t0).
"""

from __future__ import annotations

import base64
import http.client
import os
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from celery import Celery

from bench.harness import Emulator, cpu_seconds, log, ping_workers, stack
from bench.seed import release
from bench.system import (
    CpuMeter,
    drain,
    driver_runtime,
    layout,
    seed_due,
    start_system,
    summarize,
    utcnow,
)
from worker.services.outbound.dispatch import claim_due

NAIVE_PROCESSES = os.cpu_count() or 2
#: The I/O-bound pools of the simplest design: threads or greenlets per worker process.
NAIVE_CONCURRENCY = 100


def gevent_available() -> bool:
    try:
        import gevent  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- the emulator alone


def emulator_alone(total: int, threads: int = 4) -> dict[str, Any]:
    """Post `total` messages as fast as `threads` keep-alive connections can."""
    with tempfile.TemporaryDirectory(prefix="checkin-bench-emu-") as tmp:
        emulator = Emulator(Path(tmp), 0.0)
        try:
            host, port = urllib.parse.urlsplit(emulator.base_url).netloc.split(":")
            path = f"/2010-04-01/Accounts/{emulator.account_sid}/Messages.json"
            auth = base64.b64encode(f"{emulator.account_sid}:{emulator.auth_token}".encode())
            headers = {
                "Authorization": "Basic " + auth.decode(),
                "Content-Type": "application/x-www-form-urlencoded",
            }
            per_thread = total // threads
            errors: list[str] = []

            def client(k: int) -> None:
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                try:
                    for i in range(per_thread):
                        body = urllib.parse.urlencode(
                            {
                                "To": f"+1917{k:03d}{i:04d}",
                                "From": "+12125550000",
                                "Body": "Riverside Pain & Wellness: how is your mood today, "
                                "0-10 (10 = best)? Reply with a number. Reply STOP to opt out.",
                                "StatusCallback": "http://127.0.0.1:8000/webhooks/twilio/status",
                            }
                        )
                        conn.request("POST", path, body, headers)
                        resp = conn.getresponse()
                        resp.read()
                        if resp.status != 201:
                            errors.append(str(resp.status))
                finally:
                    conn.close()

            workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
            # What bounds it: the emulator's one process (a share of one core near 1 means it
            # is saturated, and more cores would not make it faster) or the client.
            emulator_cpu, client_cpu = cpu_seconds(emulator.pid) or 0.0, time.process_time()
            start = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed = time.perf_counter() - start
            emulator_cpu = (cpu_seconds(emulator.pid) or 0.0) - emulator_cpu
            client_cpu = time.process_time() - client_cpu
            sent = per_thread * threads
            return {
                "messages": sent,
                "client_threads": threads,
                "seconds": round(elapsed, 2),
                "per_second": round((sent - len(errors)) / elapsed, 1),
                "errors": len(errors),
                "emulator_core_share": round(emulator_cpu / elapsed, 2),
                "client_core_share": round(client_cpu / elapsed, 2),
                "cpus": len(os.sched_getaffinity(0)),
            }
        finally:
            emulator.close()


# ---------------------------------------------------------------- the real system


def system_run(kind: str, n: int, latency_ms: float) -> dict[str, Any]:
    with stack(kind, latency_ms) as st:
        seed_due(st, n)
        start_system(st)
        meter = CpuMeter(st)
        meter.start()
        t0 = time.time()
        release(st.db_url, utcnow())
        times, _ = drain(st, n, t0, timeout=120 + n / 20)
        result = summarize(n, t0, times, meter.stop(), st)
    result["latency_ms"] = latency_ms
    return result


# ---------------------------------------------------------------- the simplest design


def naive_run(kind: str, n: int, latency_ms: float, pool: str = "prefork") -> dict[str, Any]:
    """The simplest design on Celery's `pool`: prefork with one process per core, or one
    process of threads or greenlets with NAIVE_CONCURRENCY at a time."""
    concurrency = NAIVE_PROCESSES if pool == "prefork" else NAIVE_CONCURRENCY
    with stack(kind, latency_ms) as st:
        seed_due(st, n)
        st.procs.start(
            "naive-worker",
            [
                "-m", "celery", "-A", "bench.naive", "worker", "-Q", "naive",
                "-P", pool, "-c", str(concurrency), "-n", "naive@%h",
                "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
            ],
            env=st.env(),
        )  # fmt: skip
        ping_workers(st.redis_url, 1)
        client = Celery("naive-client", broker=st.redis_url, set_as_current=False)
        rt = driver_runtime(st.db_url)
        meter = CpuMeter(st)
        meter.start()
        try:
            t0 = time.time()
            now = utcnow()
            release(st.db_url, now)
            # The naive dispatcher: claim every due row, one task per message.
            claimed = claim_due(rt, now, n)
            for mid, _queue in claimed:
                client.send_task("naive.send", args=[mid], queue="naive", routing_key="naive")
            times, _ = drain(st, n, t0, timeout=120 + n * (latency_ms / 1000 + 0.1))
            result = summarize(n, t0, times, meter.stop(), st)
        finally:
            rt.close()
            client.close()
    result["latency_ms"] = latency_ms
    result["pool"] = pool
    result["concurrency"] = concurrency
    result["processes"] = NAIVE_PROCESSES if pool == "prefork" else 1
    return result


# ---------------------------------------------------------------- one benchmark run


def run(quick: bool, run_index: int, kind: str) -> dict[str, Any]:
    sizes = (
        {
            "alone": 1000, "fast": 1500, "slow": 1500, "naive_slow": 40, "naive_fast": 150,
            "pooled_slow": 400, "pooled_fast": 400,
        }
        if quick
        else {
            "alone": 4000, "fast": 10000, "slow": 10000, "naive_slow": 200, "naive_fast": 600,
            "pooled_slow": 2000, "pooled_fast": 2000,
        }
    )  # fmt: skip
    # A shorter run on a busy machine: BENCH_DISPATCH_SIZES="pooled_slow=300,pooled_fast=300"
    # (the sizes used are stored with the results and shown in the report).
    for item in filter(None, os.environ.get("BENCH_DISPATCH_SIZES", "").split(",")):
        key, _, value = item.partition("=")
        if key.strip() not in sizes:
            raise ValueError(f"BENCH_DISPATCH_SIZES: unknown size {key!r}")
        sizes[key.strip()] = int(value)
    out: dict[str, Any] = {"database": kind, "layout": layout(), "sizes": sizes}
    log(f"dispatch run {run_index}: emulator alone")
    out["emulator_alone"] = emulator_alone(sizes["alone"])
    log(f"  {out['emulator_alone']['per_second']}/s")
    for label, latency in (("system_0ms", 0.0), ("system_200ms", 200.0)):
        log(f"dispatch run {run_index}: {label} ({sizes['fast']} messages)")
        out[label] = system_run(kind, sizes["fast" if latency == 0 else "slow"], latency)
        log(
            f"  sustained {out[label]['per_second_sustained']}/s, total {out[label]['per_second_total']}/s"
        )
    naive = [
        ("naive_200ms", 200.0, sizes["naive_slow"], "prefork"),
        ("naive_0ms", 0.0, sizes["naive_fast"], "prefork"),
        ("naive_threads_200ms", 200.0, sizes["pooled_slow"], "threads"),
        ("naive_threads_0ms", 0.0, sizes["pooled_fast"], "threads"),
    ]
    if gevent_available():
        naive += [
            ("naive_gevent_200ms", 200.0, sizes["pooled_slow"], "gevent"),
            ("naive_gevent_0ms", 0.0, sizes["pooled_fast"], "gevent"),
        ]
    else:
        out["naive_gevent_skipped"] = "gevent is not installed (pip install -e .[bench])"
    for label, latency, size, pool in naive:
        log(f"dispatch run {run_index}: {label} ({size} messages)")
        out[label] = naive_run(kind, size, latency, pool)
        log(
            f"  sustained {out[label]['per_second_sustained']}/s, total {out[label]['per_second_total']}/s"
        )
    return out
