"""A RabbitMQ virtual host per test run, made with rabbitmqctl when it is here and allowed."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit


def _ctl(*args: str) -> bool:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return False
    done = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60)
    return done.returncode == 0


@contextmanager
def own_vhost(url: str) -> Iterator[str]:
    """`url` pointed at a new virtual host, deleted afterwards; `url` itself (and the queues
    purged by the tests) when no virtual host can be made."""
    parts = urlsplit(url)
    user = parts.username or "guest"
    vhost = f"checkin-test-{uuid.uuid4().hex[:10]}"
    if not _ctl("add_vhost", vhost):
        _purge(url)
        yield url
        _purge(url)
        return
    try:
        _ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield urlunsplit(parts._replace(path="/" + vhost))
    finally:
        _ctl("delete_vhost", vhost)


def _purge(url: str) -> None:
    """Empty this project's queues in a shared virtual host (what an earlier run left)."""
    from kombu.connection import Connection

    from worker.broker import QUEUES

    with Connection(url, connect_timeout=5) as conn:
        for queue in QUEUES:
            channel = conn.channel()
            try:
                channel.queue_purge(queue)
            except conn.channel_errors:
                pass  # never declared: nothing to empty
            finally:
                with contextlib.suppress(Exception):
                    channel.close()
