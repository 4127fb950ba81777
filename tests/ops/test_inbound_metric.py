"""`checkin_oldest_unprocessed_inbound_seconds` on /metrics: the age of the oldest stored reply
nobody processed, 0 when every reply is processed (the real app on a real server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.ops.helpers import serve
from tests.ops.test_metrics import runtime, scrape, value
from worker.services.inbound.receive import process_inbound, receive_sms
from worker.web.app import create_app

NAME = "checkin_oldest_unprocessed_inbound_seconds"


def test_the_oldest_unprocessed_reply_is_reported_until_it_is_processed(db_url: str) -> None:
    rt = runtime(db_url)
    now = datetime.now(UTC)
    try:
        with serve(create_app(rt.settings, rt)) as url:
            assert value(scrape(url), NAME) == 0
            old, _ = receive_sms(
                rt,
                sid="SM1",
                from_="+12125550190",
                to=None,
                body="hi",
                now=now - timedelta(minutes=5),
            )
            receive_sms(rt, sid="SM2", from_="+12125550191", to=None, body="hi", now=now)
            assert 300 <= value(scrape(url), NAME) < 330
            process_inbound(rt, old, now)
            assert 0 <= value(scrape(url), NAME) < 30
    finally:
        rt.close()
