"""Where the webhook hands a stored reply for processing.

With a broker: a `checkin.inbound` task on the urgent queue. Without one (`checkin web` alone, or
tests): a small thread pool in the web process runs the very same service functions. Either way
the reply is already a row, so if the hand-off fails the dispatcher's sweep processes it later.
When the database cannot be reached to store the reply, the broker keeps the reply itself
(`checkin.inbound_unstored`) until it can: Twilio does not retry a webhook that answered 5xx.
A status callback that cannot be applied then is kept the same way (`checkin.status_unapplied`).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from worker.config import Settings
from worker.services.runtime import Runtime

log = logging.getLogger(__name__)


class InboundSink(Protocol):
    def submit(self, inbound_id: int, *, crisis: bool = False) -> None:
        """Process a stored reply; `crisis`: the webhook saw crisis language in it, so it goes
        ahead of routine replies."""
        ...

    def store_later(self, text: dict[str, str]) -> bool:
        """Keep a reply that could not be stored (the database is unreachable) until it can be:
        True when someone has it now. `text` holds sid, from_, to, body and received_at."""
        ...

    def apply_status_later(self, report: dict[str, str]) -> bool:
        """Keep a status callback that could not be applied (the database is unreachable) until
        it can be: True when someone has it now. `report` holds sid, status, code and
        received_at."""
        ...

    def close(self) -> None: ...


class CelerySink:
    def __init__(self, settings: Settings) -> None:
        from worker.broker import inbound_options
        from worker.celery_app import create_celery

        self.app = create_celery(settings)
        self.routes = {c: inbound_options(settings, crisis=c) for c in (False, True)}

    def submit(self, inbound_id: int, *, crisis: bool = False) -> None:
        try:
            self.app.send_task("checkin.inbound", args=[inbound_id], **self.routes[crisis])
        except Exception:
            log.exception(
                "inbound %d: broker hand-off failed; the sweep will process it", inbound_id
            )

    def store_later(self, text: dict[str, str]) -> bool:
        try:
            self.app.send_task(
                "checkin.inbound_unstored",
                kwargs=text,
                queue="urgent",
                routing_key="urgent",
                # The task carries the number and the text: keep them out of events and logs.
                argsrepr="(…)",
                kwargsrepr="{…}",
            )
        except Exception:
            log.exception("an inbound reply could not be stored nor handed to the broker")
            return False
        return True

    def apply_status_later(self, report: dict[str, str]) -> bool:
        try:
            # The bulk queue: delivery reports are bookkeeping, and thousands of them held during
            # an outage must not queue ahead of crisis replies on the urgent one.
            self.app.send_task(
                "checkin.status_unapplied", kwargs=report, queue="bulk", routing_key="bulk"
            )
        except Exception:
            log.exception("a status callback could not be applied nor handed to the broker")
            return False
        return True

    def close(self) -> None:
        self.app.close()


class LocalSink:
    def __init__(self, rt: Runtime, workers: int = 4) -> None:
        self.rt = rt
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="inbound")

    def submit(self, inbound_id: int, *, crisis: bool = False) -> None:
        self.pool.submit(self._process, inbound_id)

    def _process(self, inbound_id: int) -> None:
        from worker.services.inbound.receive import process_inbound
        from worker.services.outbound.send_now import send_now

        try:
            now = self.rt.settings.now
            result = process_inbound(self.rt, inbound_id, now())
            send_now(self.rt, result.send, now())
        except Exception:
            log.exception("inbound %d: processing failed; the sweep will retry", inbound_id)

    def store_later(self, text: dict[str, str]) -> bool:
        return False  # no broker to keep it: the webhook answers 503

    def apply_status_later(self, report: dict[str, str]) -> bool:
        return False  # as above

    def drain(self) -> None:
        """Wait for everything submitted so far (tests, shutdown)."""
        self.pool.shutdown(wait=True)
        self.pool = ThreadPoolExecutor(4, thread_name_prefix="inbound")

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def default_sink(settings: Settings, rt: Runtime) -> InboundSink:
    return CelerySink(settings) if settings.broker_url else LocalSink(rt)
