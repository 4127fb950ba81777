"""The patient page's chart: check-in answers and questionnaire totals over time, appointments
marked, drawn as SVG (worker/web/charts.py) with the same data as text rows for the table.

The dashboard's other read models are in worker/services/read/ (queue_rows, patient_record,
ops_page, wording)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.services.clinical.scores import questionnaire_totals
from worker.services.read.wording import KIND_LABELS, local
from worker.store.models import Appointment, Patient, Response
from worker.store.record_status import AppointmentStatus
from worker.web.charts import Marker, Panel, Series, render_chart


def _totals(
    session: Session, patient_id: int, since: datetime
) -> dict[str, list[tuple[datetime, float]]]:
    return questionnaire_totals(session, patient_id, since)


def chart(
    session: Session, patient: Patient, now: datetime, days: int
) -> tuple[str, dict[str, list[tuple[str, str]]]]:
    """The SVG, and the same data as text rows (for the table under the chart)."""
    start = now - timedelta(days=days)
    end = now + timedelta(days=max(3, days // 10))
    daily: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for item, value, answered_at in session.execute(
        select(Response.item, Response.value, Response.answered_at)
        .where(
            Response.patient_id == patient.id,
            Response.item.in_(("mood", "pain", "sleep")),
            Response.answered_at >= start,
        )
        .order_by(Response.answered_at)
    ):
        daily[item].append((answered_at, float(value)))
    totals = _totals(session, patient.id, start)
    markers = [
        Marker(
            at=a.starts_at,
            kind=a.kind,
            label=f"{KIND_LABELS.get(a.kind, a.kind)} {local(a.starts_at, patient.tz)}"
            + (" (cancelled)" if a.status == AppointmentStatus.CANCELLED else ""),
            cancelled=a.status == AppointmentStatus.CANCELLED,
        )
        for a in session.scalars(
            select(Appointment).where(
                Appointment.patient_id == patient.id,
                Appointment.starts_at >= start,
                Appointment.starts_at <= end,
            )
        )
    ]
    panels = [
        Panel(
            title="Daily check-ins (0-10): mood and sleep 10 = best, pain 10 = worst",
            y_max=10,
            ticks=(0, 2, 4, 6, 8, 10),
            series=[
                Series("mood", "Mood", "#1f6feb", daily["mood"]),
                Series("pain", "Pain", "#cf222e", daily["pain"]),
                Series("sleep", "Sleep", "#8250df", daily["sleep"]),
                Series("peg", "PEG mean", "#b35c00", totals.get("peg", []), dashed=True),
            ],
        ),
        Panel(
            title="Questionnaire totals: PHQ-9 (0-27), GAD-7 (0-21)",
            y_max=27,
            ticks=(0, 5, 10, 15, 20, 27),
            bands=((10, "PHQ-9 moderate"), (20, "severe")),
            series=[
                Series("phq9", "PHQ-9", "#0a3069", totals.get("phq9", [])),
                Series("gad7", "GAD-7", "#0a7f62", totals.get("gad7", []), dashed=True),
            ],
        ),
    ]
    svg = render_chart(
        panels,
        markers,
        start=start,
        end=end,
        now=now,
        tz=patient.tz,
        title=f"Check-in answers over the last {days} days, appointments marked",
    )
    table: dict[str, list[tuple[str, str]]] = {}
    for key, label in (("mood", "Mood"), ("pain", "Pain"), ("sleep", "Sleep")):
        table[label] = [(local(t, patient.tz), f"{v:g}") for t, v in daily[key]]
    for key, label in (("phq9", "PHQ-9 total"), ("gad7", "GAD-7 total"), ("peg", "PEG mean")):
        table[label] = [
            (local(t, patient.tz), f"{v:.1f}".removesuffix(".0")) for t, v in totals.get(key, [])
        ]
    return svg, table
