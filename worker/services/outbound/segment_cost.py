"""What a planned SMS will cost in segments, rendered as it will be sent (for `checkin preview`,
the API's preview and the dashboard's): a questionnaire by link is one segment; in
questionnaire_mode=sms it is every item's text added up, counted honestly (CLINICAL.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from worker.domain.forms import TOKEN_LENGTH
from worker.domain.instruments import answer_key, get_instrument
from worker.domain.planning import MessageSpec
from worker.domain.sms_text import segments
from worker.rendering import TemplateNotFound, format_when
from worker.services.outbound.form_links import LINK_TEMPLATE, goes_by_link
from worker.services.runtime import Runtime


def sms_cost(
    rt: Runtime,
    spec: MessageSpec,
    *,
    mode: str,
    appointment: tuple[datetime, str | None, str, str] | None = None,
) -> tuple[str, int | None]:
    """(the template it will go as, its segments; None for email or what cannot be rendered
    ahead). `appointment`: (starts_at, location, kind, patient zone) for reminders."""
    item_index = int(spec.context.get("item_index", 0))
    link = goes_by_link(
        channel=spec.channel,
        template=spec.template,
        instrument=spec.instrument,
        item_index=item_index,
        mode=mode,
    )
    template = LINK_TEMPLATE if link and spec.channel == "sms" else spec.template
    if spec.channel != "sms":
        return template, None
    s = rt.settings
    base: dict[str, Any] = {
        "clinic_name": s.clinic_name,
        "clinic_phone": s.clinic_phone,
        "language": spec.language,
        **spec.context,
    }
    try:
        if link:
            # A real token is always this long: the count is the one the patient will get.
            url = f"{s.public_url.rstrip('/')}/q/{'x' * TOKEN_LENGTH}"
            return template, segments(
                rt.renderer.sms(template, spec.language, base | {"form_url": url})
            )
        if spec.template == "checkin_item" and spec.instrument:
            # The whole conversation: every item, one text each, the first with the stem.
            instrument = get_instrument(spec.instrument, spec.language)
            total = 0
            for index, item in enumerate(instrument.items):
                context = base | {
                    "item_text": item.text,
                    "item_number": index + 1,
                    "item_count": len(instrument.items),
                    "answer_key": answer_key(instrument, item),
                    "stem": instrument.stem,
                    "first": index == 0,
                }
                total += segments(rt.renderer.sms(template, spec.language, context))
            return template, total
        if appointment is not None:
            starts_at, location, kind, tz = appointment
            local = starts_at.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
            base |= {"when": format_when(local, spec.language), "location": location, "kind": kind}
        return template, segments(rt.renderer.sms(template, spec.language, base))
    except (TemplateNotFound, jinja2.UndefinedError):
        return template, None
