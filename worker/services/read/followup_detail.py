"""What a clinician needs to act on one follow-up: the read model of `GET /followups/{id}`.

The on-call page links here at any hour, so everything needed to act is gathered in one place:
who (and a number to call: the patient's, or the unknown sender's), what they wrote, verbatim,
when, why it was raised and on what evidence, the last scores and their trend, the patient's other
crisis follow-ups, the pages sent and the escalation steps taken. Nothing here writes.

Role rules are those of the queue: an account that may not see a follow-up's reason gets
`FollowupHidden` (a 403 page), and a front-desk account never gets answers, texts or scores.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.domain.instruments import PHQ9_BANDS, get_instrument, score
from worker.services.clinical.followups import get_followup
from worker.services.errors import NotFound
from worker.services.records.accounts import can_see_clinical, can_see_followup
from worker.store.models import FollowUp, InboundMessage, Message, Patient, Response, User

ITEM9_KEY: Final = "phq9_9"
# Follow-ups shown as this patient's crisis history on the page (with every urgent one).
CRISIS_REASONS: Final = frozenset(
    {"crisis_language", "phq9_item9", "possible_risk", "phq9_item9_unanswered"}
)
MAX_ID: Final = 2**31 - 1  # followups.id is a 32-bit integer on PostgreSQL
TREND_DAYS: Final = 90
TREND_POINTS: Final = 5
# Which way is worse, per series: mood and sleep 10 = best, the rest higher = worse.
HIGHER_IS_WORSE: Final = {
    "mood": False,
    "sleep": False,
    "pain": True,
    "phq9": True,
    "gad7": True,
    "peg": True,
}
SERIES_LABELS: Final = {
    "mood": "Mood (0-10, 10 best)",
    "pain": "Pain (0-10, 10 worst)",
    "sleep": "Sleep (0-10, 10 best)",
    "phq9": "PHQ-9 total (0-27)",
    "gad7": "GAD-7 total (0-21)",
    "peg": "PEG mean (0-10)",
}


class FollowupHidden(Exception):
    """The signed-in account's role may not see this follow-up."""


# ---------------------------------------------------------------- shared with the queue cards


@dataclass(frozen=True)
class Item9:
    """A PHQ-9 item 9 answer in words a clinician can read, with the check-in's total so far."""

    item_label: str
    value: int | None  # None: not answered, or answered in words
    answer_label: str | None
    words: str | None  # the patient's own words when the answer was not a number
    total: int | None  # sum of the PHQ-9 items answered in this check-in
    answered: int  # how many of the 9 items
    band: str | None  # the published band when complete; the band reached so far otherwise
    complete: bool

    @property
    def text(self) -> str:
        """One line: 'Item 9 “Thoughts that…”: 1 = Several days; PHQ-9 so far 12 (8 of 9
        items), moderate or worse'."""
        if self.value is not None:
            answer = f"{self.value} = {self.answer_label}" if self.answer_label else str(self.value)
        elif self.words:
            answer = f"answered in words: “{self.words}”"
        else:
            answer = "not answered"
        line = f"Item 9 “{self.item_label}”: {answer}"
        if self.total is not None and self.answered:
            band = (self.band or "").replace("_", " ")
            if self.complete:
                line += f"; PHQ-9 total {self.total}, {band}"
            else:
                line += f"; PHQ-9 so far {self.total} ({self.answered} of 9 items)"
                line += f", {band} or worse" if band and band != "minimal" else ""
        return line


def _evidence(item: FollowUp) -> list[dict[str, Any]]:
    raw: list[Any] = (item.detail or {}).get("evidence") or []
    out: list[dict[str, Any]] = [e for e in raw if isinstance(e, dict)]
    return out


def _item9_evidence(item: FollowUp) -> dict[str, Any] | None:
    about_item9 = item.reason in ("phq9_item9", "phq9_item9_unanswered")
    found = [e for e in _evidence(item) if e.get("item") == ITEM9_KEY or about_item9]
    return found[-1] if found else None


def _band_so_far(total: int) -> str:
    for threshold, label in PHQ9_BANDS:
        if total >= threshold:
            return label
    return "minimal"


def item9_summary(session: Session, item: FollowUp) -> Item9 | None:
    """For a follow-up about PHQ-9 item 9: the item's text, the answer's label and the PHQ-9
    total and band from the check-in's stored responses. None for any other follow-up."""
    evidence = _item9_evidence(item)
    if evidence is None:
        return None
    phq9 = get_instrument("phq9")
    labels = phq9.answer_labels or ()
    raw = evidence.get("value")
    value = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    words = evidence.get("text") or evidence.get("words")
    inbound_id = evidence.get("inbound_id")
    if not words and value is None and isinstance(inbound_id, int):
        # An item-9 reply that was not a clear 0 ("sometimes", "yes?") stores no value: the
        # patient's own words are the answer a clinician needs to read.
        words = session.scalar(select(InboundMessage.body).where(InboundMessage.id == inbound_id))
    answers: dict[str, int] = {}
    checkin_id = evidence.get("checkin_id")
    if isinstance(checkin_id, int):
        answers = {
            key: v
            for key, v in session.execute(
                select(Response.item, Response.value)
                .where(Response.checkin_id == checkin_id, Response.item.in_(phq9.keys))
                .order_by(Response.id)
            )
        }
    if value is None and ITEM9_KEY in answers:
        value = answers[ITEM9_KEY]
    answered = len(answers)
    total = sum(answers.values()) if answers else None
    complete = answered == len(phq9.keys)
    band = score("phq9", answers).band if complete else _band_so_far(total or 0)
    return Item9(
        item_label=phq9.item(ITEM9_KEY).text,
        value=value,
        answer_label=labels[value] if value is not None and 0 <= value < len(labels) else None,
        words=str(words) if words and value is None else None,
        total=total,
        answered=answered,
        band=band if total is not None else None,
        complete=complete,
    )


def inbound_ids(item: FollowUp) -> list[int]:
    """The replies behind a follow-up, oldest first."""
    seen: list[int] = []
    for e in _evidence(item):
        value = e.get("inbound_id")
        if isinstance(value, int) and value not in seen:
            seen.append(value)
    return seen


def senders(session: Session, items: list[FollowUp]) -> dict[int, str]:
    """Follow-up id → the number (or address) an unknown sender wrote from."""
    wanted = {i.id: ids[-1] for i in items if i.patient_id is None and (ids := inbound_ids(i))}
    if not wanted:
        return {}
    addresses = {
        row_id: address
        for row_id, address in session.execute(
            select(InboundMessage.id, InboundMessage.from_address).where(
                InboundMessage.id.in_(sorted(set(wanted.values())))
            )
        )
    }
    return {fid: addresses[n] for fid, n in wanted.items() if n in addresses}


def contact_href(address: str | None) -> str | None:
    """`tel:` for a phone number, `mailto:` for an email address."""
    if not address:
        return None
    if address.startswith("+") and address[1:].isdigit():
        return f"tel:{address}"
    if "@" in address:
        return f"mailto:{address}"
    return None


# ---------------------------------------------------------------- the page


@dataclass(frozen=True)
class Text:
    id: int
    body: str
    received_at: datetime
    channel: str


@dataclass(frozen=True)
class Evidence:
    at: str | None
    facts: list[tuple[str, str]]  # (label, value), in reading order


@dataclass(frozen=True)
class Trend:
    key: str
    label: str
    points: list[tuple[datetime, float]]  # oldest first, at most TREND_POINTS
    direction: str  # worse | better | same | "" (one point)

    @property
    def last(self) -> float:
        return self.points[-1][1]


@dataclass(frozen=True)
class Related:
    id: int
    reason: str
    severity: str
    status: str
    created_at: datetime
    resolution_note: str | None


@dataclass(frozen=True)
class Page:
    id: int
    status: str
    channel: str
    sent_at: datetime | None
    created_at: datetime
    attempts: int


@dataclass(frozen=True)
class Step:
    at: datetime | None
    step: str
    page: int | None
    channels: list[str]
    message_ids: list[int]


@dataclass(frozen=True)
class FollowupPage:
    item: FollowUp
    clinical: bool  # False: a front-desk account; no texts, scores or evidence
    patient: Patient | None
    tz: str  # the patient's zone, else the clinic's, else UTC
    contact: str | None  # the number to call: the patient's, or the unknown sender's
    contact_href: str | None
    texts: list[Text]
    evidence: list[Evidence]
    item9: Item9 | None
    trends: list[Trend]
    related: list[Related]
    pages: list[Page]
    escalation: list[Step]
    notes: list[str] = field(default_factory=list)

    @property
    def came_at(self) -> datetime:
        return self.texts[-1].received_at if self.texts else self.item.created_at


def followup_page(
    session: Session, user: User, followup_id: int, now: datetime, clinic_tz: str | None = None
) -> FollowupPage:
    """Raises NotFound for an unknown id and FollowupHidden when the role may not see it."""
    if not 0 < followup_id <= MAX_ID:
        # A number no row can have: PostgreSQL would refuse it as out of range.
        raise NotFound(f"no follow-up with id {followup_id}")
    item = get_followup(session, followup_id)
    if not can_see_followup(user, item.reason):
        raise FollowupHidden(f"follow-up {followup_id} is not shown to this role")
    clinical = can_see_clinical(user)
    patient = session.get(Patient, item.patient_id) if item.patient_id is not None else None
    tz = patient.tz if patient is not None else (clinic_tz or "UTC")
    texts = _texts(session, item) if clinical else []
    if patient is not None:
        contact = patient.phone or patient.email
    else:
        contact = texts[-1].from_address if texts else senders(session, [item]).get(item.id)
    return FollowupPage(
        item=item,
        clinical=clinical,
        patient=patient,
        tz=tz,
        contact=contact,
        contact_href=contact_href(contact),
        texts=[Text(t.id, t.body, t.received_at, t.channel) for t in texts],
        evidence=[_evidence_row(e) for e in _evidence(item)] if clinical else [],
        item9=item9_summary(session, item) if clinical else None,
        trends=trends(session, patient.id, now) if clinical and patient is not None else [],
        related=_related(session, item, texts) if clinical else [],
        pages=_pages(session, item.id),
        escalation=_escalation(item),
        notes=[str(e["note"]) for e in _evidence(item) if e.get("note")],
    )


def _texts(session: Session, item: FollowUp) -> list[InboundMessage]:
    ids = inbound_ids(item)
    if not ids:
        return []
    return list(
        session.scalars(
            select(InboundMessage)
            .where(InboundMessage.id.in_(ids))
            .order_by(InboundMessage.received_at, InboundMessage.id)
        )
    )


_EVIDENCE_FIELDS: Final = (
    ("matched", "Matched"),
    ("category", "Category"),
    ("tier", "Tier"),
    ("instrument", "Instrument"),
    ("item", "Item"),
    ("value", "Answer"),
    ("threshold", "Threshold"),
    ("total", "Total"),
    ("band", "Band"),
    ("baseline", "Baseline"),
    ("source", "Source"),
)


def _evidence_row(e: dict[str, Any]) -> Evidence:
    facts: list[tuple[str, str]] = []
    for key, label in _EVIDENCE_FIELDS:
        value = e.get(key)
        if value is None or value == "":
            continue
        if key == "item" and value == ITEM9_KEY:
            value = f"PHQ-9 item 9: {get_instrument('phq9').item(ITEM9_KEY).text}"
        elif key == "band":
            value = str(value).replace("_", " ")
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        facts.append((label, str(value)))
    return Evidence(at=e.get("at"), facts=facts)


def trends(session: Session, patient_id: int, now: datetime) -> list[Trend]:
    """The last few values of each series answered in the last TREND_DAYS days, and whether the
    last one is worse or better than the one before (per the series' direction)."""
    from worker.services.clinical.scores import questionnaire_totals

    since = now - timedelta(days=TREND_DAYS)
    series: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for key, value, at in session.execute(
        select(Response.item, Response.value, Response.answered_at)
        .where(
            Response.patient_id == patient_id,
            Response.item.in_(("mood", "pain", "sleep")),
            Response.answered_at >= since,
        )
        .order_by(Response.answered_at, Response.id)
    ):
        series[key].append((at, float(value)))
    series.update(questionnaire_totals(session, patient_id, since))
    out = []
    for key, label in SERIES_LABELS.items():
        points = series.get(key) or []
        if not points:
            continue
        points = points[-TREND_POINTS:]
        direction = ""
        if len(points) > 1:
            delta = points[-1][1] - points[-2][1]
            worse = delta > 0 if HIGHER_IS_WORSE[key] else delta < 0
            direction = "same" if delta == 0 else "worse" if worse else "better"
        out.append(Trend(key, label, points, direction))
    return out


def _related(session: Session, item: FollowUp, texts: list[InboundMessage]) -> list[Related]:
    """The patient's other crisis and urgent follow-ups, newest first; for an unknown sender,
    those raised by texts from the same number."""
    stmt = select(FollowUp).where(FollowUp.id != item.id)
    if item.patient_id is not None:
        stmt = stmt.where(FollowUp.patient_id == item.patient_id)
        rows = [
            f
            for f in session.scalars(stmt.order_by(FollowUp.created_at.desc()).limit(200))
            if f.severity == "urgent" or f.reason in CRISIS_REASONS
        ]
    else:
        if not texts:
            return []
        same = set(
            session.scalars(
                select(InboundMessage.id).where(
                    InboundMessage.from_address == texts[-1].from_address
                )
            )
        )
        candidates = session.scalars(
            stmt.where(FollowUp.patient_id.is_(None))
            .order_by(FollowUp.created_at.desc())
            .limit(200)
        )
        rows = [f for f in candidates if same.intersection(inbound_ids(f))]
    return [
        Related(f.id, f.reason, f.severity, f.status, f.created_at, f.resolution_note)
        for f in rows[:10]
    ]


def _pages(session: Session, followup_id: int) -> list[Page]:
    return [
        Page(m.id, m.status, m.channel, m.sent_at, m.created_at, m.attempts)
        for m in session.scalars(
            select(Message)
            .where(Message.followup_id == followup_id)
            .order_by(Message.created_at, Message.id)
        )
    ]


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo("UTC"))


def _escalation(item: FollowUp) -> list[Step]:
    """The ladder's steps as recorded on the follow-up (`detail["escalation"]`), if any."""
    raw = (item.detail or {}).get("escalation")
    if not isinstance(raw, list):
        return []
    steps = []
    for s in raw:
        if not isinstance(s, dict):
            continue
        page = s.get("page")
        steps.append(
            Step(
                at=_when(s.get("at")),
                step=str(s.get("step") or ""),
                page=page if isinstance(page, int) else None,
                channels=[str(c) for c in s.get("channels") or []],
                message_ids=[int(m) for m in s.get("message_ids") or [] if isinstance(m, int)],
            )
        )
    return steps
