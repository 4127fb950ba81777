"""One owner for "handle what came in, then send what it produced now".

A reply (or a questionnaire submitted on its form) can produce a crisis reply, on-call pages and an
acknowledgement. Those go out from the process that handled it, at once, rather than waiting
for the next dispatch cycle: the Celery task, the web process's local pool, the questionnaire form
and `checkin tick` all come through here, so the pairing cannot drift between them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from worker.services.inbound.forms import FormPage, submit_form
from worker.services.inbound.receive import Outcome, process_inbound
from worker.services.outbound.send_now import send_now
from worker.services.runtime import Runtime

Clock = Callable[[], datetime]


def handle_and_reply(rt: Runtime, inbound_id: int, clock: Clock) -> tuple[Outcome, dict[str, int]]:
    """Process one stored reply, then claim and send the rows it produced. Returns the
    processing outcome and the send outcomes (outcome name → count). The clock is read again
    for the send: processing can take a while, and the send records when it really went."""
    result = process_inbound(rt, inbound_id, clock())
    return result, send_now(rt, result.send, clock())


def submit_form_and_reply(
    rt: Runtime, token: str, fields: dict[str, str], clock: Clock
) -> FormPage:
    """Record a questionnaire submitted on its form (by SMS link or email link), then send what
    it produced (a crisis reply, pages) now, not at the next tick. Returns the page to show."""
    view = submit_form(rt, token, fields, clock())
    if view.send:
        send_now(rt, list(view.send), clock())
    return view
