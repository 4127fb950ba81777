"""A load generator for the pacing tests, importable by `multiprocessing` spawn children."""

from __future__ import annotations

import random
import time

import redis

from worker.services.outbound.pacing import Pacer

#: The margin the workers run with: it covers the (here nil) network time to the "provider".
MARGIN = 0.005


def hammer(
    redis_url: str,
    sender: str,
    rate: float,
    share: float,
    seconds: float,
    urgent: bool,
    max_segments: int,
    seed: int,
    start_at: float = 0.0,
) -> list[tuple[float, int, bool]]:
    """Ask for turns as fast as the limiter allows for `seconds`. Each "request" is a sending
    delay of 0 to 60 ms after the grant (a busy or cold worker), its arrival at the provider,
    then 5 to 40 ms until the provider answers. Returns each grant as (arrival time, segments,
    urgent), all on the host's clock, which Redis shares."""
    client = redis.Redis.from_url(redis_url)
    pacer = Pacer(client, rate=rate, urgent_share=share, margin=MARGIN)
    rng = random.Random(seed)
    grants: list[tuple[float, int, bool]] = []
    # All processes press at once: a child that finished importing late (a loaded machine) would
    # otherwise find the others done, or run alone, and the test would not be across processes.
    time.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        segments = rng.randint(1, max_segments)
        decision = pacer.try_acquire(sender, segments, urgent)
        if decision.grant is None:
            # Ask again sooner than told, to press the limiter harder.
            time.sleep(min(decision.wait, 0.05) + rng.uniform(0, 0.002))
            continue
        time.sleep(rng.choice([0.0, 0.0, rng.uniform(0, 0.06)]))
        arrived = time.time()
        time.sleep(rng.uniform(0.005, 0.04))
        assert pacer.answered(decision.grant, learn=True) is not None
        grants.append((arrived, segments, urgent))
    client.close()
    return grants
