"""Run the Twilio emulator in the foreground: `python -m checkin_emulator --port 8099`.

Prints its base URL on one line (point TWILIO_API_URL at it) and serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from checkin_emulator.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m checkin_emulator",
        description="A Twilio Messages API emulator on loopback (see emulator/checkin_emulator/twilio.py).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099, help="0 picks a free port")
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--seed", type=int, default=None, help="seed for fault injection")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--status-callbacks", action="store_true", help="send sent/delivered callbacks"
    )
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    emulator = TwilioEmulator(
        args.account_sid, args.auth_token, args.host, args.port, verbose=args.verbose
    )
    try:
        emulator.start()
    except OSError as exc:
        sys.stderr.write(f"emulator: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    try:
        emulator.configure(
            seed=args.seed, latency_ms=args.latency_ms, status_callbacks=args.status_callbacks
        )
        sys.stdout.write(emulator.base_url + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
