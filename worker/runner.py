"""`checkin run`: the whole system in the foreground, on one machine.

Children: the web app, an `urgent` worker, a `bulk` worker and beat, each its own process
group; plus the embedded Redis when CHECKIN_BROKER_URL is unset. Ctrl-C (SIGINT) or SIGTERM
stops every child, then Redis; if any child dies, the rest are stopped too, so nothing is left
running half-configured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from worker.config import Settings
from worker.embedded import EmbeddedRedis

log = logging.getLogger(__name__)


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own CLI with fixed arguments
        [sys.executable, "-m", "worker.cli", *args], env=env, start_new_session=True
    )


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


def run_all(settings: Settings, *, host: str, port: int) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    Path("var").mkdir(exist_ok=True)
    env = dict(os.environ)
    redis: EmbeddedRedis | None = None
    if not settings.broker_url:
        redis = EmbeddedRedis(workdir=Path("var")).start()
        env["CHECKIN_BROKER_URL"] = redis.url
        log.info("embedded Redis on %s", redis.url)
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    procs = [
        _spawn(["web", "--host", host, "--port", str(port)], env),
        _spawn(["worker", "-Q", "urgent", "-c", "4", "--name", "urgent"], env),
        _spawn(["worker", "-Q", "bulk", "-c", "4", "--name", "bulk"], env),
        _spawn(["beat", "--schedule-file", "var/celerybeat-schedule"], env),
    ]
    sys.stderr.write(
        f"checkin-worker running: http://{host}:{port}/healthz  (Ctrl-C stops everything)\n"
        f"dashboard: http://{host}:{port}/  sign in with an account from `checkin users add`, "
        "or run `checkin demo` for a demo clinic and its sign-in\n"
    )
    code = 0
    try:
        while not stopping:
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                log.error("a process exited (%s); stopping the rest", dead[0].args)
                code = 1
                break
            time.sleep(0.5)
    finally:
        _stop(procs)
        if redis is not None:
            redis.stop()
        sys.stderr.write("checkin-worker stopped\n")
    return code
