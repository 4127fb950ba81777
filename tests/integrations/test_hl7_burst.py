"""The CI-sized HL7 burst (bench/hl7_burst.py at 300 messages): bookings, reschedules and
resends over four MLLP connections at once; counts only, never speed."""

from __future__ import annotations

import asyncio

from bench.hl7_burst import count, plan, send_all
from tests.conftest import make_settings
from tests.integrations.siu import listener
from worker.domain.hl7_mapping import load_mapping
from worker.services.records.hl7_inbox import FeedContext
from worker.services.runtime import build_runtime


def test_burst_loses_and_duplicates_nothing(db_url: str, console) -> None:
    rt = build_runtime(make_settings(db_url, clinic_tz="America/New_York"), channels=console)
    ctx = FeedContext(rt.sessions, load_mapping(None), "America/New_York", False, rt.settings.now)
    per = plan(300, 4)

    async def burst() -> dict:
        async with listener(ctx) as port:
            return await send_all(port, per)

    sent = asyncio.run(burst())
    rt.close()
    assert sent["codes"] == {"AA": 300}
    counts = count(db_url, per)
    assert counts["lost"] == 0 and counts["duplicated"] == 0, counts
    assert (counts["inbox_rows"], counts["appointments"], counts["rescheduled"]) == (270, 240, 30)
    assert counts["patients"] == 120
