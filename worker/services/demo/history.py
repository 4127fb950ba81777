"""Four weeks of made-up history for the demo patients, so the dashboard has something to show:
daily answers, weekly questionnaires, past appointments, the conversation, and a few follow-ups
(one urgent). Demo only: rows are written directly, as if the pipeline had produced them, with
provider ids starting `demo-` so nothing mistakes them for real sends.

Deterministic (no randomness): the same demo gives the same pictures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from worker.services.clinical.followups import acknowledge, raise_followup
from worker.services.runtime import Runtime
from worker.store.models import Appointment, CheckIn, InboundMessage, Message, Patient, Response
from worker.store.outbox import MessageStatus
from worker.store.record_status import AppointmentStatus, CheckinStatus

DAYS = 28


@dataclass(frozen=True)
class Story:
    """How one demo patient's answers move over the four weeks (index 0 = 28 days ago)."""

    mood: Sequence[float] | None
    pain: Sequence[float] | None
    sleep: Sequence[float] | None
    weekly: str | None  # phq9 | peg
    gad7: bool
    appointment_days: Sequence[int]  # days ago


def _curve(start: float, low: float, end: float, dip_at: int) -> list[float]:
    """A smooth path start → low (at dip_at) → end, with a small deterministic wobble."""
    out = []
    for d in range(DAYS):
        if d <= dip_at:
            v = start + (low - start) * d / max(dip_at, 1)
        else:
            v = low + (end - low) * (d - dip_at) / max(DAYS - 1 - dip_at, 1)
        out.append(max(0.0, min(10.0, round(v + 0.8 * math.sin(d * 1.7)))))
    return out


def _digits(text: str) -> list[float]:
    assert len(text) == DAYS
    return [float(c) for c in text]


def _stories() -> list[Story]:
    # Alex: an infusion series (days 24 to 7 ago) lifts mood, eases pain and helps sleep; the
    # last week slips back, the pattern that makes clinicians consider a booster.
    return [
        Story(
            mood=_digits("2322123345566776787776655443"),
            pain=_digits("8788877665544434333434455667"),
            sleep=_digits("3323344555666767776766555444"),
            weekly="phq9",
            gad7=False,
            appointment_days=(24, 21, 17, 14, 10, 7),
        ),
        # Sam: therapy, slowly better.
        Story(
            mood=_curve(4, 3, 6, 10),
            pain=None,
            sleep=None,
            weekly="phq9",
            gad7=True,
            appointment_days=(27, 20, 13, 6),
        ),
        # Lucía: physical therapy helped, then pain climbs again.
        Story(
            mood=None,
            pain=_digits("7787676656556545445445678898"),
            sleep=None,
            weekly="peg",
            gad7=False,
            appointment_days=(26, 19, 12, 5),
        ),
    ]


PHQ9_TOTALS = (19, 16, 11, 8, 12)  # weekly, oldest first
GAD7_TOTALS = (14, 12, 9, 7, 8)


def _spread(total: int, items: int, cap: int = 3) -> list[int]:
    """`total` spread over `items` answers of 0..cap, larger ones first; item 9 kept at 0."""
    values = [0] * items
    left = total
    for i in range(items * cap):
        if left == 0:
            break
        slot = i % (items - 1 if items == 9 else items)
        if values[slot] < cap:
            values[slot] += 1
            left -= 1
    return values


class _Writer:
    def __init__(self, rt: Runtime, session: Session, patient: Patient, now: datetime) -> None:
        self.rt, self.session, self.p, self.now = rt, session, patient, now
        self.zone = ZoneInfo(patient.tz)
        self.n = 0
        clinic = rt.settings.clinic_name
        self.context = {"clinic_name": clinic, "clinic_phone": rt.settings.clinic_phone}

    def at(self, days_ago: int, hour: int, minute: int = 0) -> datetime:
        day = (self.now.astimezone(self.zone) - timedelta(days=days_ago)).date()
        return datetime.combine(day, time(hour, minute), self.zone).astimezone(ZoneInfo("UTC"))

    def out(self, when: datetime, kind: str, template: str, **extra: object) -> None:
        self.n += 1
        try:
            body = self.rt.renderer.sms(template, self.p.language, {**self.context, **extra})
        except Exception:
            body = f"{self.rt.settings.clinic_name}: ({template})"
        email = self.p.channel == "email"
        self.session.add(
            Message(
                patient_id=self.p.id,
                channel=self.p.channel,
                kind=kind,
                template=template,
                language=self.p.language,
                priority="urgent" if kind == "crisis" else "bulk",
                exempt_quiet_hours=kind in ("crisis", "reply"),
                due_at=when,
                dedupe_key=f"demo:{self.p.id}:{self.n}",
                context={},
                to_address=self.p.email if email else self.p.phone,
                subject=f"{self.rt.settings.clinic_name}: check-in" if email else None,
                body=body,
                status=MessageStatus.DELIVERED,
                provider_id=f"demo-{self.p.id}-{self.n}",
                attempts=1,
                segments=None if email else 1,
                created_at=when,
                queued_at=when,
                sending_at=when,
                sent_at=when,
                delivered_at=when + timedelta(seconds=4),
                updated_at=when + timedelta(seconds=4),
            )
        )

    def reply(self, when: datetime, body: str, outcome: str) -> InboundMessage:
        self.n += 1
        row = InboundMessage(
            provider_sid=f"demo-{self.p.id}-{self.n}",
            channel=self.p.channel,
            from_address=(self.p.email if self.p.channel == "email" else self.p.phone) or "",
            patient_id=self.p.id,
            body=body,
            received_at=when,
            processed_at=when + timedelta(seconds=2),
            outcome=outcome,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def answers(self, when: datetime, instrument: str, values: dict[str, int]) -> int:
        checkin = CheckIn(
            patient_id=self.p.id,
            instrument=instrument,
            channel=self.p.channel,
            item_index=len(values),
            status=CheckinStatus.ANSWERED,
            sent_at=when - timedelta(minutes=20),
            window_closes_at=when + timedelta(hours=24),
            answered_at=when,
        )
        self.session.add(checkin)
        self.session.flush()
        for item, value in values.items():
            self.session.add(
                Response(
                    checkin_id=checkin.id,
                    patient_id=self.p.id,
                    instrument=instrument,
                    item=item,
                    value=int(value),
                    answered_at=when,
                    partial=False,
                    late=False,
                    source=self.p.channel,
                )
            )
        return checkin.id


def seed_history(
    rt: Runtime, session: Session, patients: Sequence[tuple[Patient, str]], now: datetime
) -> None:
    """Write the four weeks before `now` for up to three demo patients (in PEOPLE order), each
    given with the kind of its appointments."""
    for (patient, kind), story in zip(patients, _stories(), strict=False):
        w = _Writer(rt, session, patient, now)
        for days_ago in story.appointment_days:
            starts = w.at(days_ago, 10)
            session.add(
                Appointment(
                    patient_id=patient.id,
                    kind=kind,
                    starts_at=starts,
                    location="Suite 200",
                    status=AppointmentStatus.BOOKED,
                    version=1,
                    confirmed_at=starts - timedelta(days=1),
                    created_at=starts - timedelta(days=7),
                    updated_at=starts - timedelta(days=1),
                    planned_until=starts,
                )
            )
        for d in range(DAYS):
            days_ago = DAYS - d
            evening = w.at(days_ago, 19, 0)
            values: dict[str, int] = {}
            if story.mood is not None:
                values["mood"] = int(story.mood[d])
            if story.pain is not None:
                values["pain"] = round(story.pain[d])
            if values:
                instrument = "mood_pain" if len(values) == 2 else next(iter(values))
                template = f"checkin_{instrument}"
                w.out(evening, "checkin", template)
                answered = evening + timedelta(minutes=7 + d % 5 * 6)
                text = " ".join(str(v) for v in values.values())
                w.reply(answered, text, "answer")
                w.answers(answered, instrument, values)
                w.out(answered + timedelta(seconds=5), "reply", "ack")
            if story.sleep is not None:
                morning = w.at(days_ago, 8, 30)
                w.out(morning, "checkin", "checkin_sleep")
                v = int(story.sleep[d])
                w.reply(morning + timedelta(minutes=12), str(v), "answer")
                w.answers(morning + timedelta(minutes=12), "sleep", {"sleep": v})
        for week, days_ago in enumerate((28, 21, 14, 7, 1)):
            when = w.at(days_ago, 12, 15)
            if story.weekly == "phq9":
                items = _spread(PHQ9_TOTALS[week] - (3 if story.gad7 else 0), 9)
                w.answers(when, "phq9", {f"phq9_{i + 1}": v for i, v in enumerate(items)})
                if story.gad7:
                    items = _spread(GAD7_TOTALS[week], 7)
                    w.answers(when, "gad7", {f"gad7_{i + 1}": v for i, v in enumerate(items)})
            elif story.weekly == "peg":
                base = 7 - week if week < 4 else 8
                w.answers(when, "peg", {"peg_p": base, "peg_e": base - 1, "peg_g": base})
        _followups(w, story, now)


def _followups(w: _Writer, story: Story, now: datetime) -> None:
    s, p = w.session, w.p
    if story.sleep is not None:  # Alex: mood slipping back after the infusion series
        raise_followup(
            s,
            patient_id=p.id,
            reason="worsening",
            severity="high",
            detail={"instrument": "mood", "item": "mood", "value": 3, "baseline": 6.4},
            now=now - timedelta(minutes=50),
        )
        low, _ = raise_followup(
            s,
            patient_id=p.id,
            reason="low_mood",
            severity="routine",
            detail={"instrument": "mood_pain", "item": "mood", "value": 3},
            now=now - timedelta(hours=30),
        )
        acknowledge(s, low.id, by="Dr. Demo Clinician", now=now - timedelta(hours=27))
    elif story.gad7:  # Sam: a message that needs a person now
        when = now - timedelta(minutes=9)
        inbound = w.reply(when, "Some days I feel like I can't go on", "crisis+free_text")
        w.out(when + timedelta(seconds=3), "crisis", "crisis_reply")
        raise_followup(
            s,
            patient_id=p.id,
            reason="crisis_language",
            severity="urgent",
            detail={"inbound_id": inbound.id, "matched": "can't go on"},
            now=when,
        )
    else:  # Lucía: pain climbing again, and a reschedule request for the front desk
        raise_followup(
            s,
            patient_id=p.id,
            reason="high_pain",
            severity="high",
            detail={"instrument": "pain", "item": "pain", "value": 9},
            now=now - timedelta(hours=3, minutes=10),
        )
        when = now - timedelta(hours=2)
        w.reply(when, "R", "appointment_reschedule")
        w.out(when + timedelta(seconds=4), "reply", "ack")
        raise_followup(
            s,
            patient_id=p.id,
            reason="reschedule_request",
            severity="routine",
            detail={"note": "Patient replied R to a reminder."},
            now=when,
        )
