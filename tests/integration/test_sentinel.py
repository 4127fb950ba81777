"""Redis Sentinel as the broker: a real redis-server and a real sentinel watching it. Celery
publishes through the sentinel to the master, a real worker consumes from it, queue depths are
read through kombu's sentinel transport, and pacing's Redis client follows the same master."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.conftest import make_settings
from tests.integration.procs import Procs, wait_for
from worker.broker import queue_depths
from worker.celery_app import create_celery, send_task_options
from worker.embedded import free_port, redis_binary
from worker.services.runtime import build_runtime

pytestmark = pytest.mark.slow

MASTER = "checkin-test"


@dataclass
class Sentinel:
    master_port: int
    sentinel_port: int

    @property
    def url(self) -> str:
        return f"sentinel://127.0.0.1:{self.sentinel_port}/0?master_name={MASTER}"


def _answers(port: int) -> bool:
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), timeout=0.5) as s,
    ):
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    return False


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[Sentinel]:
    master_port, sentinel_port = free_port(), free_port()
    conf = tmp_path / "sentinel.conf"  # a sentinel rewrites its file: it must be writable
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n"
        f"sentinel down-after-milliseconds {MASTER} 5000\n"
    )
    base = [redis_binary(), "--save", "", "--appendonly", "no", "--loglevel", "warning"]
    procs = [
        subprocess.Popen(
            [*base, "--port", str(master_port), "--bind", "127.0.0.1", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [redis_binary(), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
        ),
    ]
    try:
        deadline = time.monotonic() + 15
        while not (_answers(master_port) and _answers(sentinel_port)):
            assert time.monotonic() < deadline, "redis-server or the sentinel did not answer"
            assert all(p.poll() is None for p in procs), "redis-server or the sentinel exited"
            time.sleep(0.05)
        yield Sentinel(master_port, sentinel_port)
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)


def test_celery_pacing_and_queue_depths_through_a_sentinel(
    sentinel: Sentinel, sqlite_url: str, procs: Procs, tmp_path: Path
) -> None:
    settings = make_settings(sqlite_url, broker_url=sentinel.url)
    master = redis.Redis(port=sentinel.master_port)
    assert settings.effective_redis_url == sentinel.url

    rt = build_runtime(settings)
    try:
        assert rt.redis is not None and rt.pacer is not None
        rt.redis.set("checkin-sentinel-probe", "1")
    finally:
        rt.close()
    assert master.get("checkin-sentinel-probe") == b"1", "pacing's client found the master"

    app = create_celery(settings)
    try:
        for _ in range(3):
            app.send_task("checkin.dispatch", **send_task_options(settings, "urgent"))
    finally:
        app.close()
    assert queue_depths(settings) == {"crisis": 0, "urgent": 3, "bulk": 0}
    assert master.llen("urgent") == 3, "Celery published to the master the sentinel named"

    procs.env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CHECKIN_DATABASE_URL": sqlite_url,
        "CHECKIN_BROKER_URL": sentinel.url,
    }
    worker = procs.start("worker", "-Q", "urgent", "-c", "1", log="worker.log")
    wait_for(lambda: queue_depths(settings)["urgent"] == 0, 60, "the worker to take the tasks")
    log = tmp_path / "worker.log"
    wait_for(lambda: log.read_text().count("succeeded") >= 3, 60, "three dispatch tasks run")
    assert worker.poll() is None
