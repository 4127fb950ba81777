"""The dispatch benchmark's 0 ms comparison alone, for A/B work on the send path:
`python -m bench.zero_ms [--messages 10000] [--runs 3]`.

Each run is `bench.dispatch`'s own `emulator_alone(4000)` then `system_run(..., 0 ms)`: the
ratio of the two rates and the CPU per message of every process. It writes nothing (not
REPORT.md, not the stored results): run it on two checkouts in turn, interleaved, and compare.
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
        alone = emulator_alone(4000)["per_second"]
        system = system_run(kind, args.messages, 0.0)
        sustained = system["per_second_sustained"]
        line = {
            "run": k,
            "database": kind,
            "emulator_alone_per_s": alone,
            "system_sustained_per_s": sustained,
            "ratio": round(sustained / alone, 3) if sustained and alone else None,
            "duplicates": system["duplicates"],
            "cpu_ms_per_message": system.get("cpu_ms_per_message"),
        }
        log(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
