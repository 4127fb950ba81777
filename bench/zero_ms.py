"""The dispatch benchmark's 0 ms comparison alone, for A/B work on the send path:
`python -m bench.zero_ms [--messages 10000] [--runs 3]`.

Each run is `bench.dispatch`'s own `emulator_alone(4000)` then `system_run(..., 0 ms)`: the
ratio of the two rates and the CPU per message of every process. It writes nothing (not
REPORT.md, not the stored results): run it on two checkouts in turn, interleaved, and compare.

On fewer cores: `taskset -c 0 .venv/bin/python -m bench.zero_ms` (its children inherit the
affinity; PostgreSQL's backends inherit the postmaster's: `taskset -p -c 0 <postmaster pid>`,
and back to all cores after). bench/ANALYSIS.md compares 1 core with 2.
"""

from __future__ import annotations

import argparse
import json

from bench.dispatch import emulator_alone, system_run
from bench.harness import log
from bench.system import db_kind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zero_ms", description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    kind = db_kind()
    for k in range(1, args.runs + 1):
        measured = emulator_alone(4000)
        alone = measured["per_second"]
        system = system_run(kind, args.messages, 0.0)
        sustained = system["per_second_sustained"]
        line = {
            "run": k,
            "database": kind,
            "emulator_alone_per_s": alone,
            # The emulator alone's own bound: its process's share of one core (near 1: saturated).
            "emulator_alone_core_share": measured["emulator_core_share"],
            "cpus": measured["cpus"],
            "system_sustained_per_s": sustained,
            "ratio": round(sustained / alone, 3) if sustained and alone else None,
            "duplicates": system["duplicates"],
            "cpu_ms_per_message": system.get("cpu_ms_per_message"),
        }
        log(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
