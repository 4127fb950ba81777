"""The project's Twilio emulator, plus a clock: it records when each accepted message arrived.

`python -m bench.emulator --port 0 --latency-ms 200` prints its base URL and serves until
SIGTERM, like `python -m checkin_emulator`. One extra control endpoint:

- `GET /_emulator/accepts?since=N` → `[[arrived, to, answered], ...]` for accepted message
  creations, in the order they were accepted, from the N-th on (so a poller only fetches what
  is new).

`arrived` is when the request reached the handler, before the configured latency (what a
provider's rate limit counts); `answered` is when the 201 went back, after it (when a sender
learns its message was accepted). Both are wall-clock `time.time()`, comparable with the
benchmark driver's clock on the same machine.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import urllib.parse
from types import FrameType
from typing import Any

from checkin_emulator.twilio import TwilioEmulator


class TimedEmulator(TwilioEmulator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._accepts: list[tuple[float, str, float]] = []
        self._accepts_lock = threading.Lock()

    def _handle(
        self, method: str, target: str, authorization: str | None, raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        arrived = time.time()
        parts = urllib.parse.urlsplit(target)
        if parts.path == "/_emulator/accepts" and method == "GET":
            since = int(dict(urllib.parse.parse_qsl(parts.query)).get("since", "0"))
            with self._accepts_lock:
                return 200, [list(a) for a in self._accepts[since:]], {}
        if parts.path == "/_emulator/reset" and method == "POST":
            with self._accepts_lock:
                self._accepts.clear()
        status, payload, headers = super()._handle(method, target, authorization, raw)
        if method == "POST" and status == 201 and isinstance(payload, dict):
            with self._accepts_lock:
                self._accepts.append((arrived, str(payload.get("to", "")), time.time()))
        return status, payload, headers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulator")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    emulator = TimedEmulator(port=args.port)
    emulator.start()
    try:
        emulator.configure(latency_ms=args.latency_ms)
        sys.stdout.write(emulator.base_url + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
