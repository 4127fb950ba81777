"""Server-rendered SVG charts for the patient page: no JavaScript, no external library.

One SVG with two panels on a shared time axis: the daily 0-10 items (mood, pain, sleep, PEG
mean) on top, questionnaire totals (PHQ-9 0-27, GAD-7 0-21) below, with appointments drawn as
vertical lines across both (infusions solid, other kinds dashed) and today marked. Every text
that goes into the SVG is escaped here; the caller may insert the result as markup. Only
presentation attributes are used (no `style`), so a strict Content-Security-Policy holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    color: str
    points: Sequence[tuple[datetime, float]]
    dashed: bool = False


@dataclass(frozen=True)
class Marker:
    at: datetime
    label: str
    kind: str
    cancelled: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    y_max: float
    series: Sequence[Series]
    ticks: Sequence[float] = ()
    bands: Sequence[tuple[float, str]] = field(default_factory=tuple)  # (y, label) guide lines


WIDTH = 960
PANEL_HEIGHT = 190
LEFT = 44
RIGHT = 16
TOP = 46
GAP = 50
BOTTOM = 34
MARKER_COLORS = {"infusion": "#7b2cbf", "therapy": "#0a7f62", "physical_therapy": "#b35c00"}


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _a(value: object) -> str:
    return escape(str(value), quote=True)


def render_chart(
    panels: Sequence[Panel],
    markers: Sequence[Marker],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    tz: str,
    title: str,
) -> str:
    """The SVG markup (a string) for `panels` between `start` and `end`."""
    zone = ZoneInfo(tz)
    height = TOP + len(panels) * PANEL_HEIGHT + (len(panels) - 1) * GAP + BOTTOM
    plot_w = WIDTH - LEFT - RIGHT
    span = max((end - start).total_seconds(), 1.0)

    def x_of(t: datetime) -> float:
        return LEFT + plot_w * (t - start).total_seconds() / span

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{_a(title)}" class="chart" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(title)}</title>",
    ]
    top_of = [TOP + i * (PANEL_HEIGHT + GAP) for i in range(len(panels))]
    bottom = top_of[-1] + PANEL_HEIGHT if panels else TOP

    # The time axis: one tick per day or per week, labelled in the patient's zone.
    days = span / 86400
    step = timedelta(days=1 if days <= 21 else 7 if days <= 120 else 14)
    tick = datetime.combine(start.astimezone(zone).date(), datetime.min.time(), zone)
    while tick <= end:
        if tick >= start:
            x = x_of(tick)
            out.append(
                f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom}" '
                'stroke="#eef0f3" stroke-width="1"/>'
            )
            out.append(
                f'<text x="{x:.1f}" y="{bottom + 16}" font-size="11" text-anchor="middle" '
                f'fill="#57606a">{escape(tick.strftime("%b %d").replace(" 0", " "))}</text>'
            )
        tick = datetime.combine((tick + step).date(), datetime.min.time(), zone)

    for panel, y0 in zip(panels, top_of, strict=True):
        y_max = panel.y_max or 1.0

        def y_of(v: float, y0: int = y0, y_max: float = y_max) -> float:
            return y0 + PANEL_HEIGHT - PANEL_HEIGHT * max(0.0, min(v, y_max)) / y_max

        out.append(
            f'<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{PANEL_HEIGHT}" '
            'fill="none" stroke="#d0d7de"/>'
        )
        out.append(
            f'<text x="{LEFT}" y="{y0 - 20}" font-size="13" font-weight="600" '
            f'fill="#1f2328">{escape(panel.title)}</text>'
        )
        for tv in panel.ticks:
            y = y_of(tv)
            out.append(
                f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" '
                'stroke="#eef0f3"/>'
            )
            out.append(
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
                f'fill="#57606a">{_fmt(tv)}</text>'
            )
        for y_band, label in panel.bands:
            y = y_of(y_band)
            out.append(
                f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" '
                'stroke="#cf222e" stroke-opacity="0.35" stroke-dasharray="2 4"/>'
            )
            out.append(
                f'<text x="{LEFT + plot_w - 4}" y="{y - 3:.1f}" font-size="10" '
                f'text-anchor="end" fill="#a40e26">{escape(label)}</text>'
            )
        for s in panel.series:
            pts = sorted((t, v) for t, v in s.points if start <= t <= end)
            if not pts:
                continue
            coords = " ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in pts)
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            out.append(
                f'<polyline class="series series-{_a(s.key)}" points="{coords}" fill="none" '
                f'stroke="{_a(s.color)}" stroke-width="2"{dash} stroke-linejoin="round"/>'
            )
            for t, v in pts:
                when = t.astimezone(zone).strftime("%Y-%m-%d %H:%M")
                out.append(
                    f'<circle cx="{x_of(t):.1f}" cy="{y_of(v):.1f}" r="3.5" '
                    f'fill="{_a(s.color)}" data-series="{_a(s.key)}">'
                    f"<title>{escape(f'{s.label} {_fmt(v)} on {when}')}</title></circle>"
                )

    for m in markers:
        if not start <= m.at <= end:
            continue
        x = x_of(m.at)
        color = "#8c959f" if m.cancelled else MARKER_COLORS.get(m.kind, "#57606a")
        dash = "" if m.kind == "infusion" and not m.cancelled else ' stroke-dasharray="4 3"'
        width = 2 if m.kind == "infusion" else 1.5
        # One line per panel (not across the gaps, where the panel titles are).
        lines = "".join(
            f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + PANEL_HEIGHT}" '
            f'stroke="{color}" stroke-opacity="0.6" stroke-width="{width}"{dash}/>'
            for y0 in top_of
        )
        out.append(
            f'<g class="marker marker-{_a(m.kind)}" data-kind="{_a(m.kind)}">{lines}'
            f'<path d="M{x - 5:.1f},{TOP - 10} L{x + 5:.1f},{TOP - 10} L{x:.1f},{TOP - 2} Z" '
            f'fill="{color}"/>'
            f"<title>{escape(m.label)}</title></g>"
        )

    if start <= now <= end:
        x = x_of(now)
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom}" stroke="#1f6feb" '
            'stroke-width="1" stroke-dasharray="1 3"/>'
            f'<text x="{x + 3:.1f}" y="{bottom - 4}" font-size="10" fill="#1f6feb">today</text>'
        )
    out.append("</svg>")
    return "".join(out)
