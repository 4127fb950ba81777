"""`checkin run`: the whole system in the foreground, on one machine, supervised.

Children: the web app, an `urgent` worker, a `bulk` worker and beat, each its own process
group; plus the embedded Redis when CHECKIN_BROKER_URL is unset. A child that exits while the
run is not stopping is started again after a back-off (1 s, doubling, at most 30 s): a worker
can exit on its own after a broker restart (celery/celery#9250), and a transient failure should
not take the whole system down. A child that keeps failing (CRASH_LIMIT exits within
CRASH_WINDOW seconds) is a configuration or code problem that restarts will not fix: the run
says so, stops everything and exits with status 1. Ctrl-C (SIGINT) or SIGTERM stops every child,
then Redis, and exits with status 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from worker.config import Settings
from worker.embedded import EmbeddedRedis

log = logging.getLogger(__name__)

#: A child that exits this many times within CRASH_WINDOW seconds is given up on.
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
#: How often the supervisor looks at its children (and notices a signal).
POLL_SECONDS = 0.2
#: The urgent worker's metrics port (the bulk worker's is the next one).
DEFAULT_METRICS_PORT = 9101


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own CLI with fixed arguments
        [sys.executable, "-m", "worker.cli", *args], env=env, start_new_session=True
    )


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class Child:
    """One supervised process: how to start it, and its recent unexpected exits."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    proc: subprocess.Popen[bytes] | None = None
    exits: deque[float] = field(default_factory=deque)  # monotonic times, within CRASH_WINDOW
    restart_at: float | None = None

    def launch(self) -> None:
        self.restart_at = None
        self.proc = self.start()

    def exited(self, now: float, how: str) -> bool:
        """Record an unexpected exit and schedule the restart; False means give up."""
        self.proc = None
        self.exits.append(now)
        while self.exits and now - self.exits[0] > CRASH_WINDOW:
            self.exits.popleft()
        failures = len(self.exits)
        if failures >= CRASH_LIMIT:
            log.error(
                "%s %s: %d exits within %.0f s, giving up",
                self.name,
                how,
                failures,
                CRASH_WINDOW,
            )
            return False
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))
        self.restart_at = now + delay
        log.warning(
            "%s %s; restarting it in %.0f s (%d exits within %.0f s; giving up at %d)",
            self.name,
            how,
            delay,
            failures,
            CRASH_WINDOW,
            CRASH_LIMIT,
        )
        return True


def _stop(procs: list[subprocess.Popen[bytes]], grace: float = 15.0) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            p.wait(remaining)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def _redis_child(redis: EmbeddedRedis) -> Child:
    def start() -> subprocess.Popen[bytes]:
        # The same port again, so that the workers' and web's broker URL stays right.
        redis.start()
        assert redis.proc is not None
        return redis.proc

    return Child("redis", start)


def supervise(children: list[Child], stopping: Callable[[], bool]) -> int:
    """Start `children` in order (those not already running) and keep them running until
    `stopping()`: 0, or 1 when one of them keeps failing. Returns with the children still
    running; the caller stops them."""
    for child in children:
        if child.proc is None:
            child.launch()
    while not stopping():
        now = time.monotonic()
        if not all(_tend(child, now) for child in children):
            return 1
        time.sleep(POLL_SECONDS)
    return 0


def _tend(child: Child, now: float) -> bool:
    """Notice that `child` exited, or restart it when its back-off is over; False: give up."""
    if child.proc is not None:
        code = child.proc.poll()
        if code is None:
            return True
        return child.exited(now, f"(pid {child.proc.pid}) {_describe_exit(code)}")
    if child.restart_at is None or now < child.restart_at:
        return True
    try:
        child.launch()
    except (OSError, RuntimeError) as exc:  # e.g. Redis could not bind its port again
        return child.exited(time.monotonic(), f"could not start ({exc})")
    assert child.proc is not None
    log.info("%s restarted (pid %d)", child.name, child.proc.pid)
    return True


def run_all(
    settings: Settings, *, host: str, port: int, metrics_port: int = DEFAULT_METRICS_PORT
) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    Path("var").mkdir(exist_ok=True)
    env = dict(os.environ)
    redis: EmbeddedRedis | None = None
    if not settings.broker_url:
        redis = EmbeddedRedis(workdir=Path("var")).start()
        env["CHECKIN_BROKER_URL"] = redis.url
        # The URL without its password (development only; see worker/embedded.py).
        log.info("embedded Redis on redis://%s/0 (password-protected)", redis.address)
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def cli(*args: str) -> Callable[[], subprocess.Popen[bytes]]:
        return lambda: _spawn(list(args), env)

    def metrics(offset: int) -> tuple[str, str]:
        return "--metrics-port", str(metrics_port + offset)

    children = [
        Child("web", cli("web", "--host", host, "--port", str(port))),
        Child(
            "worker-urgent",
            cli("worker", "-Q", "urgent", "-c", "4", "--name", "urgent", *metrics(0)),
        ),
        Child("worker-bulk", cli("worker", "-Q", "bulk", "-c", "4", "--name", "bulk", *metrics(1))),
        Child("beat", cli("beat", "--schedule-file", "var/celerybeat-schedule")),
    ]
    if settings.hl7_port is not None:  # the HL7 v2 MLLP listener: only when a feed is set up
        children.append(Child("hl7", cli("hl7", "listen")))
    supervised = list(children)
    if redis is not None:
        redis_child = _redis_child(redis)
        redis_child.proc = redis.proc  # already started: the others need its URL
        supervised.insert(0, redis_child)
    sys.stderr.write(
        f"checkin-worker running: http://{host}:{port}/healthz  (Ctrl-C stops everything)\n"
        f"worker metrics: http://{settings.worker_metrics_host}:{metrics_port}/metrics (urgent), "
        f":{metrics_port + 1}/metrics (bulk)\n"
        f"dashboard: http://{host}:{port}/  sign in with an account from `checkin users add`, "
        "or run `checkin demo` for a demo clinic and its sign-in\n"
    )
    code = 0
    try:
        code = supervise(supervised, lambda: stopping)
        if code:
            sys.stderr.write(
                "checkin-worker: a process kept failing (see the log above); stopping everything\n"
            )
    finally:
        _stop([c.proc for c in children if c.proc is not None])
        if redis is not None:
            redis.stop()
        sys.stderr.write("checkin-worker stopped\n")
    return code
