"""Vetting a clinic's template overrides (CHECKIN_TEMPLATES_DIR) before they reach patients.

Every template a folder of overrides changes (its own file, or a shared "_" layout it extends) is
rendered in each language with sample values as long as real ones get (a long clinic name and
location, the widest date, PHQ-9 item 9), the way the product renders it, over the shipped
templates. Each result says whether it rendered, for an SMS its encoding and segments against the
template's budget, and any forbidden word (worker/domain/message_rules.py). Files the product
would never read (a misspelt name, an unknown language) are reported too: an override that is
silently ignored is as wrong as a bad one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import jinja2

from worker.domain.instruments import answer_key, answer_options, get_instrument
from worker.domain.message_rules import SmsBudget, forbidden_words, sms_budget
from worker.domain.names import APPOINTMENT_KINDS, LANGUAGES
from worker.domain.sms_text import encoding, segments
from worker.rendering import Renderer, TemplateNotFound, format_when, shipped_templates_dir

SAMPLE_CLINIC: Final = "Riverside Pain & Wellness"
SAMPLE_PHONE: Final = "+1 (555) 010-4477"
SAMPLE_LOCATION: Final = "Riverside Medical Plaza, 4500 W Main St, Suite 210"
SAMPLE_LINK: Final = "https://checkin.riverside-pain.example/followups/8f3a2c71"
# A questionnaire link as services/outbound/form_links.py makes it: /q/ and a 22-character token.
SAMPLE_FORM_URL: Final = "https://checkin.riverside-pain.example/q/Xb7qP0-rT9sLmN2vW4yZaQ"
# A reminder email's links as services/outbound/appointment_links.py makes them.
SAMPLE_APPOINTMENT_URL: Final = "https://checkin.riverside-pain.example/a/Kq3vN8-wT1sLmB5xR7yZcE"
_KINDS: Final = ("sms", "email")
_EMAIL_SUFFIXES: Final = (".subject.txt.j2", ".html.j2", ".txt.j2")
# The instrument behind each one-question check-in; checkin_item is sampled with PHQ-9 item 9.
_SIMPLE: Final = {
    "checkin_mood": "mood",
    "checkin_pain": "pain",
    "checkin_sleep": "sleep",
    "checkin_mood_pain": "mood_pain",
}


def _longest_when(language: str) -> str:
    start = datetime(2026, 1, 1)
    dates = (
        start + timedelta(days=day, hours=hour, minutes=30)
        for day in range(365)
        for hour in (9, 12, 23)
    )
    return max((format_when(d, language) for d in dates), key=len)


def _items(instrument_name: str, language: str, only: int | None = None) -> list[dict[str, Any]]:
    instrument = get_instrument(instrument_name, language)
    items = instrument.items if only is None else (instrument.items[only],)
    return [
        {
            "key": item.key,
            "text": item.text,
            "minimum": item.minimum,
            "maximum": item.maximum,
            "links": [
                {"value": v, "label": label, "url": f"{SAMPLE_LINK}/{item.key}/{v}?sig=Zm9v"}
                for v, label in answer_options(instrument, item)
            ],
        }
        for item in items
    ]


def sample_context(name: str, language: str, kind: str) -> dict[str, Any]:
    """What the product passes template `name`, filled with long realistic values."""
    ctx: dict[str, Any] = {
        "clinic_name": SAMPLE_CLINIC,
        "clinic_phone": SAMPLE_PHONE,
        # The product passes CHECKIN_SMS_SENDER_NAME, or the clinic name, to every template.
        "sms_sender": SAMPLE_CLINIC,
        "language": language,
    }
    if name.startswith("checkin_") or name == "after_visit":
        # Every check-in email (the day-after-visit one too), and a questionnaire's SMS by
        # link, carry the form's link.
        ctx["form_url"] = SAMPLE_FORM_URL
    if name == "checkin_item":
        instrument = get_instrument("phq9", language)
        index = len(instrument.items) - 1  # item 9: the one most worth getting right
        item = instrument.items[index]
        ctx.update(
            item_text=item.text,
            item_number=index + 1,
            item_count=len(instrument.items),
            answer_key=answer_key(instrument, item),
            stem=instrument.stem,
            first=False,
            items=_items("phq9", language, None if kind == "email" else index),
        )
    elif name in _SIMPLE:
        ctx["items"] = _items(_SIMPLE[name], language)
    elif name.startswith("reminder_") or name in ("infusion_prep", "appointment_confirm"):
        appointment_kind = name.removeprefix("reminder_")
        ctx.update(
            when=_longest_when(language),
            location=SAMPLE_LOCATION,
            kind=appointment_kind if appointment_kind in APPOINTMENT_KINDS else "infusion",
        )
        if kind == "email" and name.startswith("reminder_"):
            ctx.update(
                confirm_url=f"{SAMPLE_APPOINTMENT_URL}/confirm",
                reschedule_url=f"{SAMPLE_APPOINTMENT_URL}/reschedule",
            )
    elif name == "clarify":
        ctx.update(low=0, high=10)
    elif name == "oncall_page":
        ctx["link"] = SAMPLE_LINK
    return ctx


@dataclass
class Result:
    """One template in one language, rendered over the shipped set with the overrides first."""

    kind: str
    name: str
    language: str
    error: str | None = None
    encoding: str | None = None
    segments: int | None = None
    budget: SmsBudget | None = None
    forbidden: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        out = []
        if self.error is not None:
            out.append(f"does not render: {self.error}")
        if self.budget is not None and self.segments is not None:
            if self.budget.gsm7 and self.encoding != "GSM-7":
                out.append("not GSM-7 (one such character makes it UCS-2, 70 characters a segment)")
            if self.segments > self.budget.segments:
                out.append(f"{self.segments} segments, over the budget of {self.budget.segments}")
        if self.forbidden:
            out.append(f"forbidden words: {', '.join(self.forbidden)}")
        return out


@dataclass
class Report:
    results: list[Result]
    # Files under the folder the product never reads, with why.
    unused: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not self.unused and not any(r.problems for r in self.results)


def _template_files(root: Path) -> Iterator[tuple[str, str, str, Path]]:
    """(kind, language, file name, path) for every file under `root`."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        parts = path.relative_to(root).parts
        if len(parts) == 3:
            yield parts[0], parts[1], parts[2], path
        else:
            yield "", "", path.name, path


def _name_of(kind: str, filename: str) -> str | None:
    suffixes = (".txt.j2",) if kind == "sms" else _EMAIL_SUFFIXES
    for suffix in suffixes:
        if filename.endswith(suffix):
            return filename.removesuffix(suffix)
    return None


def _affected(
    overrides: Path, shipped: Renderer
) -> tuple[set[tuple[str, str, str]], list[tuple[str, str]]]:
    """The (kind, name, language) an override folder changes, and the files it has in vain."""
    affected: set[tuple[str, str, str]] = set()
    unused: list[tuple[str, str]] = []
    for kind, language, filename, path in _template_files(overrides):
        where = str(path.relative_to(overrides))
        name = _name_of(kind, filename) if kind in _KINDS else None
        if kind not in _KINDS or language not in LANGUAGES or name is None:
            unused.append((where, "not <sms|email>/<en|es>/<name>.<part>.j2"))
        elif name.startswith("_"):
            # A shared layout: every template of that kind and language may extend it.
            affected.update((kind, n, language) for n in shipped.names(kind))
        elif name not in shipped.names(kind):
            unused.append((where, f"no shipped {kind} template is called {name!r}"))
        else:
            affected.add((kind, name, language))
    return affected, unused


def _check_one(renderer: Renderer, kind: str, name: str, language: str) -> Result:
    result = Result(kind=kind, name=name, language=language)
    context = sample_context(name, language, kind)
    try:
        if kind == "sms":
            body = renderer.sms(name, language, context)
            bodies = [body]
            result.encoding, result.segments = encoding(body), segments(body)
            result.budget = sms_budget(name, language)
        else:
            email = renderer.email(name, language, context)
            bodies = [email.subject, email.text, email.html]
    except (jinja2.TemplateError, TemplateNotFound) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    result.forbidden = list(
        dict.fromkeys(word for body in bodies for word in forbidden_words(name, body))
    )
    return result


def check_overrides(overrides: Path) -> Report:
    """Render every template that `overrides` changes; see the module docstring."""
    shipped = Renderer(shipped_templates_dir())
    affected, unused = _affected(overrides, shipped)
    renderer = Renderer(overrides_dir=overrides)
    results = [_check_one(renderer, *key) for key in sorted(affected)]
    return Report(results=results, unused=unused)
