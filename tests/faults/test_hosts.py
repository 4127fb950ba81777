"""Several hosts against one Redis and one PostgreSQL: two bulk and two urgent workers, each on
a "host" of its own (a network namespace with its own address, tests/faults/hosts.py). Mid-batch
one bulk host dies (SIGKILL to its process group; it comes back 10 s later, as a rebooted
machine would) and the other is cut off the network for 30 s. Pass: nothing lost, nothing
twice, nothing after a STOP, every crisis reply sent, and the shared pacing never let more
than the rate through in any one-second window at the provider, across all hosts."""

from __future__ import annotations

import bisect
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import IN_CI
from tests.faults import hosts as hosts_mod
from tests.faults.harness import SUMMARY, FaultRun
from tests.faults.hosts import Host, Hosts

pytestmark = [pytest.mark.faults, pytest.mark.slow]

RATE = 40
DUE = 1000
HOSTS = {"bulk-1": "bulk", "bulk-2": "bulk", "urgent-1": "urgent", "urgent-2": "urgent"}
PARTITION_SECONDS = 30


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any window [t, t + 1 s) starting at an arrival."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


def host_env(run: FaultRun, host: Host) -> dict[str, str]:
    """The workers' environment, with every service reached through the host's gateway."""
    assert run.emulator is not None
    gw = host.gateway
    db = make_url(run.app_url).set(host=gw).render_as_string(hide_password=False)
    return {
        **run.worker_env(),
        "CHECKIN_BROKER_URL": f"redis://{gw}:{run.redis.port}/0",
        "CHECKIN_DATABASE_URL": db,
        "TWILIO_API_URL": f"http://{gw}:{run.emulator.port}",
        "CHECKIN_SMTP_HOST": gw,
    }


def test_four_hosts_one_killed_one_partitioned(pg_url: str, tmp_path: Path) -> None:
    why = hosts_mod.available()
    if why:
        if IN_CI:
            pytest.fail(f"the multi-host fault test cannot run in CI: {why}")
        pytest.skip(f"network namespaces unavailable: {why}")
    accepted_at: list[float] = []

    def clock() -> datetime:
        # The emulator reads its clock once per accepted message, and in its callback thread.
        if threading.current_thread().name != "twilio-emulator-callbacks":
            accepted_at.append(time.time())
        return datetime.now(UTC)

    pg_port = make_url(pg_url).port or 5432
    with FaultRun(
        "hosts-kill-partition",
        tmp_path,
        pg_url,
        env={"CHECKIN_SMS_RATE": str(RATE)},
        emulator_clock=clock,
    ) as run:
        assert run.emulator is not None and run.smtp is not None
        ports = [run.redis.port, pg_port, run.emulator.port, run.smtp.port]
        with Hosts(tmp_path, ports) as hosts:
            for name, queue in HOSTS.items():
                host = hosts.add(name)
                threads = "4" if queue == "urgent" else "2"
                hosts.start(
                    host, "worker", host_env(run, host),
                    "worker", "-Q", queue, "-c", threads, "--name", name,
                )  # fmt: skip
            run.note(
                f"hosts up: {', '.join(f'{h.name} {h.address}' for h in hosts.hosts.values())}"
            )
            run.seed(DUE)
            run.start(workers=False)
            run.wait_accepted(0.3)
            killed, cut = hosts.hosts["bulk-1"], hosts.hosts["bulk-2"]
            hosts.kill(killed)
            run.note("host bulk-1 killed (SIGKILL to its process group)")
            time.sleep(2)
            hosts.partition(cut)
            run.note("host bulk-2 partitioned (link down)")
            time.sleep(10)
            hosts.revive(killed)
            run.note("host bulk-1 back (rebooted)")
            time.sleep(PARTITION_SECONDS - 10)
            hosts.heal(cut)
            run.note(f"host bulk-2 back on the network after {PARTITION_SECONDS}s")
            tally = run.finish()
            restarts = list(hosts.restarts)
    busiest = busiest_second(accepted_at)
    tally.extra.update(
        hosts=len(HOSTS), rate=RATE, busiest_second=busiest, host_restarts=len(restarts)
    )
    SUMMARY[-1] = tally.line()
    print(tally.line(), *restarts, sep="\n")
    tally.assert_pass()
    assert busiest <= RATE, f"{busiest} messages accepted within one second (rate {RATE}/s)"
