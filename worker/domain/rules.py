"""Follow-up rules: which answers, trends and silences a clinician should look at.

Pure functions (no clock, no database): the caller passes the answers, the patient's history and
the statuses of recent check-ins, and gets back `Flag`s to turn into follow-ups (CONTRACT.md
reason codes and severities). Every threshold is a field of `RuleConfig`, with the defaults of
CLINICAL.md, so that a clinic can change it; `rules_from_mapping` builds one from parsed YAML/JSON.

The one rule no configuration can weaken: PHQ-9 item 9 (thoughts of being better off dead or of
self-harm) answered 1 or more is always an urgent `phq9_item9` flag, whatever the total and even
when the rest of the questionnaire is missing.

Instrument data (item keys, ranges, LOINC codes) comes from `worker.domain.instruments`, whose
files are read once and cached; nothing else here touches the outside world.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Final, get_type_hints

from worker.domain.instruments import get_instrument, score
from worker.domain.names import SEVERITIES

# Not configurable on purpose: CLINICAL.md makes any positive answer to item 9 a crisis.
ITEM9_KEY: Final = "phq9_9"
ITEM9_URGENT_AT: Final = 1

PAIN_BASELINES: Final = ("first_week", "preceding")
CHECKIN_STATUSES: Final = ("answered", "partial", "expired", "open")
# Items `evaluate_worsening` accepts; only pain, mood and phq9_total have rules, the others are
# tracked (accepted so that callers can pass every score they store without filtering).
TRACKED_ITEMS: Final = (
    "mood",
    "pain",
    "sleep",
    "phq2_total",
    "phq9_total",
    "gad2_total",
    "gad7_total",
    "peg_total",
)

_RANK: Final = {severity: rank for rank, severity in enumerate(SEVERITIES)}
# Means of integer answers are compared against fractional thresholds: forgive rounding error.
_EPS: Final = 1e-9


@dataclass(frozen=True)
class RuleConfig:
    """Every threshold of the follow-up rules, defaults from CLINICAL.md.

    Immediate rules, on one answer:
      low_mood_high      mood <= this -> `low_mood` high (mood is 0-10, 10 = best).
      low_mood_routine   mood <= this (and above low_mood_high) -> `low_mood` routine; set it
                         equal to low_mood_high to keep only the high flag.
      high_pain          pain >= this -> `high_pain` high (0-10 NRS, 10 = worst).
      phq9_high_total    complete PHQ-9 total >= this -> `positive_screen` high.
      gad7_high_total    complete GAD-7 total >= this -> `positive_screen` high.
      phq2_positive      PHQ-2 total >= this -> `positive_screen` routine, offer the PHQ-9.
      gad2_positive      GAD-2 total >= this -> `positive_screen` routine, offer the GAD-7.

    Worsening, against the patient's own history (CLINICAL.md: a ketamine response wearing off):
      pain_worse_points    pain up by at least this many points ...
      pain_worse_fraction  ... and by at least this fraction of the baseline (0.30 = 30 %).
      pain_baseline        "first_week": the mean of the pain answers in the first
                           `baseline_days` of the patient's pain history, once that week is over
                           and holds `min_points` answers; until then (or if it holds fewer) the
                           mean of the `pain_window_days` before the new answer.
                           "preceding": always the mean of the `pain_window_days` before.
      baseline_days        length of the "first week" baseline, in days.
      pain_window_days     length of the preceding-days pain baseline, in days.
      mood_drop_points     mood down by at least this many points against ...
      mood_window_days     ... the mean of the answers in this many days before the new one.
      min_points           fewest answers a pain or mood baseline needs; fewer, no flag.
      phq9_rise_points     PHQ-9 total up by at least this from its lowest point so far.
      phq9_relapse_total   PHQ-9 total back to at least this after having been below it.
      pain_worsening_severity, mood_worsening_severity, phq9_worsening_severity
                           severity of each `worsening` flag.

    Missed check-ins:
      missed_in_a_row      this many expired check-ins in a row -> `missed_checkins` routine.
    """

    low_mood_high: int = 2
    low_mood_routine: int = 3
    high_pain: int = 8
    phq9_high_total: int = 20
    gad7_high_total: int = 15
    phq2_positive: int = 3
    gad2_positive: int = 3
    pain_worse_points: float = 2.0
    pain_worse_fraction: float = 0.30
    pain_baseline: str = "first_week"
    baseline_days: int = 7
    pain_window_days: int = 14
    mood_drop_points: float = 3.0
    mood_window_days: int = 7
    min_points: int = 3
    phq9_rise_points: int = 5
    phq9_relapse_total: int = 10
    pain_worsening_severity: str = "routine"
    mood_worsening_severity: str = "routine"
    phq9_worsening_severity: str = "high"
    missed_in_a_row: int = 3

    def __post_init__(self) -> None:
        for name in (
            "pain_worsening_severity",
            "mood_worsening_severity",
            "phq9_worsening_severity",
        ):
            _check_choice(name, getattr(self, name), SEVERITIES)
        _check_choice("pain_baseline", self.pain_baseline, PAIN_BASELINES)
        for name in ("baseline_days", "pain_window_days", "mood_window_days", "min_points"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.missed_in_a_row < 1:
            raise ValueError(f"missed_in_a_row must be at least 1, got {self.missed_in_a_row!r}")
        for name in ("pain_worse_points", "pain_worse_fraction", "mood_drop_points"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.phq9_rise_points < 1:
            raise ValueError(f"phq9_rise_points must be at least 1, got {self.phq9_rise_points!r}")
        if self.low_mood_high > self.low_mood_routine:
            raise ValueError(
                f"low_mood_high ({self.low_mood_high}) must not be above "
                f"low_mood_routine ({self.low_mood_routine})"
            )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def rules_from_mapping(m: Mapping[str, object]) -> RuleConfig:
    """A RuleConfig from a parsed mapping (YAML, JSON); missing fields keep their defaults.

    Raises ValueError naming the field for an unknown key, a value of the wrong type (booleans are
    never numbers; an integer is accepted for a float field) or an out-of-range value.
    """
    if not isinstance(m, Mapping):
        raise ValueError(f"rule settings must be a mapping, got {type(m).__name__}")
    hints = get_type_hints(RuleConfig)
    known = [f.name for f in fields(RuleConfig)]
    values: dict[str, Any] = {}
    for key, value in m.items():
        if key not in known:
            raise ValueError(f"unknown rule setting {key!r}; expected one of {', '.join(known)}")
        expected = hints[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if expected is int and number and isinstance(value, int):
            values[key] = value
        elif expected is float and number and isinstance(value, int | float):
            values[key] = float(value)
        elif expected is str and isinstance(value, str):
            values[key] = value
        else:
            raise ValueError(f"rule setting {key!r} must be {_TYPE_NAMES[expected]}, got {value!r}")
    return RuleConfig(**values)


_TYPE_NAMES: Final[dict[object, str]] = {int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Flag:
    """One reason for a clinician to look: `reason` is a CONTRACT.md follow-up reason code,
    `severity` "urgent" | "high" | "routine", `detail` JSON-ready evidence (instrument, item,
    value, total, band, threshold, baseline, LOINC code, ...)."""

    reason: str
    severity: str
    detail: dict[str, object]


@dataclass(frozen=True)
class Observation:
    """One tracked value at an aware instant: `item` is one of TRACKED_ITEMS."""

    item: str
    value: float
    at: datetime


def _by_severity(flags: list[Flag]) -> list[Flag]:
    return sorted(flags, key=lambda f: _RANK[f.severity])  # stable: rule order within a rank


def _validated(instrument: str, values: Mapping[str, int]) -> dict[str, int]:
    """The answers that belong to `instrument`, each checked against its item's range."""
    inst = get_instrument(instrument)
    own: dict[str, int] = {}
    for key, value in values.items():
        if key not in inst.keys and key != ITEM9_KEY:
            continue
        item = get_instrument("phq9").item(key) if key not in inst.keys else inst.item(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{key}: answer must be an integer, got {value!r}")
        if not item.minimum <= value <= item.maximum:
            raise ValueError(f"{key}: {value} is outside {item.minimum}-{item.maximum}")
        own[key] = value
    return own


def _with_loinc(detail: dict[str, object], loinc: str | None) -> dict[str, object]:
    if loinc is not None:
        detail["loinc"] = loinc
    return detail


def evaluate_answer(
    instrument: str, values: Mapping[str, int], config: RuleConfig = RuleConfig()
) -> list[Flag]:
    """The immediate flags raised by one answer set of `instrument`, most severe first.

    `values` maps item keys (mood, pain, sleep, phq9_1..phq9_9, gad7_1..gad7_7, peg_p/peg_e/peg_g)
    to answers and may be partial (a questionnaire answered one item per message): item rules
    (mood, pain, PHQ-9 item 9) fire on the items present, total rules only on a complete set.
    Keys of other instruments are ignored, except `phq9_9`, which is never ignored.
    Each rule is independent: a PHQ-9 with item 9 at 1 and a total of 20 gives both the urgent
    `phq9_item9` flag and the high `positive_screen` flag.

    Raises ValueError for an unknown instrument or an answer outside its item's range.
    """
    own = _validated(instrument, values)
    flags: list[Flag] = []

    item9 = own.get(ITEM9_KEY)
    if item9 is not None and item9 >= ITEM9_URGENT_AT:
        phq9 = get_instrument("phq9")
        detail: dict[str, object] = {
            "instrument": "phq9",
            "item": ITEM9_KEY,
            "value": item9,
            "threshold": ITEM9_URGENT_AT,
            "complete": all(k in own for k in phq9.keys),
        }
        total = score("phq9", own)
        if total.total is not None:
            detail.update(total=int(total.total), band=total.band, total_loinc=phq9.total_loinc)
        flags.append(Flag("phq9_item9", "urgent", _with_loinc(detail, phq9.item(ITEM9_KEY).loinc)))

    mood = own.get("mood")
    if mood is not None and mood <= config.low_mood_routine:
        high = mood <= config.low_mood_high
        threshold = config.low_mood_high if high else config.low_mood_routine
        flags.append(
            Flag(
                "low_mood",
                "high" if high else "routine",
                {"instrument": instrument, "item": "mood", "value": mood, "threshold": threshold},
            )
        )

    pain = own.get("pain")
    if pain is not None and pain >= config.high_pain:
        detail = {
            "instrument": instrument,
            "item": "pain",
            "value": pain,
            "threshold": config.high_pain,
        }
        flags.append(
            Flag("high_pain", "high", _with_loinc(detail, get_instrument("pain").total_loinc))
        )

    flags.extend(_total_flags(instrument, own, config))
    return _by_severity(flags)


# instrument -> (threshold field, severity, instrument to offer next)
_TOTAL_RULES: Final[dict[str, tuple[str, str, str | None]]] = {
    "phq2": ("phq2_positive", "routine", "phq9"),
    "gad2": ("gad2_positive", "routine", "gad7"),
    "phq9": ("phq9_high_total", "high", None),
    "gad7": ("gad7_high_total", "high", None),
}


def _total_flags(instrument: str, own: Mapping[str, int], config: RuleConfig) -> list[Flag]:
    rule = _TOTAL_RULES.get(instrument)
    if rule is None:
        return []
    field, severity, offer = rule
    result = score(instrument, own)
    threshold: int = getattr(config, field)
    if result.total is None or result.total < threshold:
        return []
    detail: dict[str, object] = {
        "instrument": instrument,
        "total": int(result.total),
        # PHQ-2/GAD-2 bands from score() use the published cut-off; the flag uses the clinic's.
        "band": "positive" if offer is not None else result.band,
        "threshold": threshold,
    }
    if offer is not None:
        detail["offer"] = offer
    return [
        Flag(
            "positive_screen", severity, _with_loinc(detail, get_instrument(instrument).total_loinc)
        )
    ]


def _check_observation(obs: Observation, what: str) -> None:
    if obs.item not in TRACKED_ITEMS:
        raise ValueError(
            f"{what}: unknown item {obs.item!r}; expected one of {', '.join(TRACKED_ITEMS)}"
        )
    if obs.at.tzinfo is None or obs.at.utcoffset() is None:
        raise ValueError(f"{what}: time {obs.at!r} must be timezone-aware")
    if isinstance(obs.value, bool) or not math.isfinite(obs.value):
        raise ValueError(f"{what}: value must be a finite number, got {obs.value!r}")


def _mean(points: Sequence[Observation]) -> float:
    return sum(p.value for p in points) / len(points)


def _r(x: float) -> float:
    return round(x, 2)


def evaluate_worsening(
    history: Sequence[Observation], new: Observation, config: RuleConfig = RuleConfig()
) -> list[Flag]:
    """`worsening` flags for `new` against the patient's own earlier observations of its item.

    `history` is the patient's observations in any order, without `new`; it may mix items (only
    `new.item`'s count) and should reach back to the patient's first answers, which the
    "first_week" pain baseline uses. Only observations strictly before `new.at` count. Rules:
    pain up by >= pain_worse_points and >= pain_worse_fraction of the baseline (see
    RuleConfig.pain_baseline); mood down by >= mood_drop_points against the mean of the
    mood_window_days before; PHQ-9 total up by >= phq9_rise_points from its lowest point so far,
    or at >= phq9_relapse_total after having been below it. At most one flag, whose detail holds
    the comparison; `peg_total` and the other tracked items have no rule.

    Raises ValueError for an unknown item, a naive time or a non-finite value.
    """
    _check_observation(new, "new")
    for obs in history:
        _check_observation(obs, "history")
    earlier = sorted((o for o in history if o.item == new.item and o.at < new.at), key=_at)
    if new.item == "pain":
        return _pain_worsening(earlier, new, config)
    if new.item == "mood":
        return _mood_worsening(earlier, new, config)
    if new.item == "phq9_total":
        return _phq9_worsening(earlier, new, config)
    return []


def _at(obs: Observation) -> datetime:
    return obs.at


def _window(earlier: Sequence[Observation], end: datetime, days: int) -> list[Observation]:
    start = end - timedelta(days=days)
    return [o for o in earlier if start <= o.at < end]


def _pain_worsening(earlier: list[Observation], new: Observation, config: RuleConfig) -> list[Flag]:
    if not earlier:
        return []
    kind = ""
    basis: list[Observation] = []
    if config.pain_baseline == "first_week":
        first_end = earlier[0].at + timedelta(days=config.baseline_days)
        week = [o for o in earlier if o.at < first_end]
        if new.at >= first_end and len(week) >= config.min_points:
            kind, basis = "first_week", week
    if not kind:
        kind = "preceding"
        basis = _window(earlier, new.at, config.pain_window_days)
    if len(basis) < config.min_points:
        return []
    baseline = _mean(basis)
    change = new.value - baseline
    if change < config.pain_worse_points - _EPS:
        return []
    if change < config.pain_worse_fraction * baseline - _EPS:
        return []
    detail: dict[str, object] = {
        "item": "pain",
        "value": new.value,
        "baseline": _r(baseline),
        "baseline_kind": kind,
        "baseline_points": len(basis),
        "baseline_from": basis[0].at.isoformat(),
        "baseline_to": basis[-1].at.isoformat(),
        "change": _r(change),
        "change_fraction": _r(change / baseline) if baseline > 0 else None,
        "threshold_points": config.pain_worse_points,
        "threshold_fraction": config.pain_worse_fraction,
    }
    loinc = get_instrument("pain").total_loinc
    return [Flag("worsening", config.pain_worsening_severity, _with_loinc(detail, loinc))]


def _mood_worsening(earlier: list[Observation], new: Observation, config: RuleConfig) -> list[Flag]:
    basis = _window(earlier, new.at, config.mood_window_days)
    if len(basis) < config.min_points:
        return []
    baseline = _mean(basis)
    drop = baseline - new.value
    if drop < config.mood_drop_points - _EPS:
        return []
    detail: dict[str, object] = {
        "item": "mood",
        "value": new.value,
        "baseline": _r(baseline),
        "baseline_kind": "preceding",
        "baseline_points": len(basis),
        "baseline_from": basis[0].at.isoformat(),
        "baseline_to": basis[-1].at.isoformat(),
        "change": _r(-drop),
        "threshold_points": config.mood_drop_points,
    }
    return [Flag("worsening", config.mood_worsening_severity, detail)]


def _phq9_worsening(earlier: list[Observation], new: Observation, config: RuleConfig) -> list[Flag]:
    if not earlier:
        return []
    lowest = min(earlier, key=lambda o: o.value)
    rise = new.value - lowest.value
    criteria: list[str] = []
    if rise >= config.phq9_rise_points - _EPS:
        criteria.append("rise_from_lowest")
    below = [o for o in earlier if o.value < config.phq9_relapse_total]
    if below and new.value >= config.phq9_relapse_total:
        criteria.append("back_above_relapse_total")
    if not criteria:
        return []
    detail: dict[str, object] = {
        "item": "phq9_total",
        "instrument": "phq9",
        "value": new.value,
        "criteria": criteria,
        "lowest": lowest.value,
        "lowest_at": lowest.at.isoformat(),
        "rise": _r(rise),
        "threshold_rise": config.phq9_rise_points,
        "relapse_total": config.phq9_relapse_total,
        "previous": earlier[-1].value,
        "previous_at": earlier[-1].at.isoformat(),
    }
    if below:
        detail["last_below_at"] = below[-1].at.isoformat()
    loinc = get_instrument("phq9").total_loinc
    return [Flag("worsening", config.phq9_worsening_severity, _with_loinc(detail, loinc))]


def missed_checkins(recent: Sequence[str], config: RuleConfig = RuleConfig()) -> Flag | None:
    """A routine `missed_checkins` flag when the newest check-ins are `missed_in_a_row` expired.

    `recent` holds check-in statuses, newest first. "answered" and "partial" (the patient replied)
    end the streak; "open" check-ins are still waiting for a reply, neither answered nor missed,
    and are skipped. The flag's detail counts the whole streak. Raises ValueError for a status
    other than answered, partial, expired, open.
    """
    for status in recent:
        if status not in CHECKIN_STATUSES:
            raise ValueError(
                f"unknown check-in status {status!r}; expected one of {', '.join(CHECKIN_STATUSES)}"
            )
    count = 0
    for status in recent:
        if status == "open":
            continue
        if status != "expired":
            break
        count += 1
    if count < config.missed_in_a_row:
        return None
    return Flag("missed_checkins", "routine", {"count": count, "threshold": config.missed_in_a_row})
