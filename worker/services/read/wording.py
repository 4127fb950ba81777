"""How the read models put things into words: follow-up reasons and appointment kinds as staff
read them, the time each severity has to be acknowledged, ages and local times."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# Time to acknowledge, by severity (shown in the queue; urgent matches the re-page interval).
SLA = {"urgent": timedelta(minutes=15), "high": timedelta(hours=4), "routine": timedelta(hours=24)}

REASON_LABELS = {
    "crisis_language": "Crisis language in a reply",
    "possible_risk": "Possible risk language in a reply",
    "phq9_item9": "PHQ-9 item 9 (thoughts of self-harm)",
    "phq9_item9_unanswered": "PHQ-9 item 9 unanswered",
    "high_pain": "High pain",
    "low_mood": "Low mood",
    "positive_screen": "Positive screen",
    "worsening": "Worsening against baseline",
    "missed_checkins": "Missed check-ins",
    "unparseable_reply": "Reply needs reading",
    "confirm_request": "Appointment confirmation",
    "reschedule_request": "Reschedule request",
    "cancel_request": "Cancellation request",
    "late_arrival": "Running late",
    "opt_out": "Opted out of SMS",
    "delivery_failed": "Delivery failed",
    "no_show": "Missed appointment",
    "after_visit": "Day after a visit: answer to read",
}

KIND_LABELS = {
    "infusion": "Infusion",
    "therapy": "Therapy",
    "physical_therapy": "Physical therapy",
    "consult": "Consult",
}


def human_age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in " + human_age(-delta)
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60:02d} min" if hours < 10 else f"{hours} h"
    return f"{hours // 24} d"


def sla_text(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"


def local(dt: datetime | None, tz: str, fmt: str = "%a %b %d, %H:%M") -> str:
    if dt is None:
        return ""
    return dt.astimezone(ZoneInfo(tz)).strftime(fmt).replace(" 0", " ")
