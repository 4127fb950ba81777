"""The check-in instruments: their items in each language, their LOINC codes, and scoring.

Validated instruments (PHQ-9, GAD-7, PEG) keep their published wording in one data file per
instrument and language under `worker/instruments/`, each naming its source; `phq2` and `gad2` are
the first two items of `phq9` and `gad7`. The files are read on first use and cached.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

from worker.domain.names import INSTRUMENTS, LANGUAGES

_DATA_DIR: Final = Path(__file__).resolve().parent.parent / "instruments"

# Sent one item per SMS, the next item when the previous one is answered.
CONVERSATIONAL: Final = frozenset({"phq2", "phq9", "gad2", "gad7", "peg"})

PHQ9_BANDS: Final = ((20, "severe"), (15, "moderately_severe"), (10, "moderate"), (5, "mild"))
GAD7_BANDS: Final = ((15, "severe"), (10, "moderate"), (5, "mild"))
# PHQ-2 / GAD-2: a total of 3 or more is a positive screen (CLINICAL.md).
SCREEN_CUTOFF: Final = 3


@dataclass(frozen=True)
class Item:
    """One question. `minimum`..`maximum` is the accepted integer answer range.

    `low_anchor`/`high_anchor` name the ends of a numeric scale ("No pain" ... "Pain as bad as you
    can imagine"); None for items answered with labelled options (PHQ/GAD).
    """

    key: str
    text: str
    minimum: int
    maximum: int
    loinc: str | None
    low_anchor: str | None = None
    high_anchor: str | None = None


@dataclass(frozen=True)
class Instrument:
    """An instrument in one language.

    `answer_labels[v]` is the published label of answer value v (PHQ/GAD), with its LOINC answer
    code at `answer_loinc[v]`. `provisional` marks wording that is not yet the validated
    translation (see the data file's `source`).
    """

    name: str
    items: tuple[Item, ...]
    conversational: bool
    panel_loinc: str | None
    total_loinc: str | None
    stem: str | None
    answer_labels: tuple[str, ...] | None
    language: str = "en"
    answer_loinc: tuple[str, ...] | None = None
    source: str = ""
    provisional: bool = False

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(item.key for item in self.items)

    def item(self, key: str) -> Item:
        """The item with this key; ValueError if the instrument has none."""
        for item in self.items:
            if item.key == key:
                return item
        raise ValueError(f"instrument {self.name!r} has no item {key!r}")


@dataclass(frozen=True)
class Score:
    """`total` is None until every item is answered (and for `mood_pain`, which has no total).

    `band`: PHQ-9 minimal / mild / moderate / moderately_severe / severe; GAD-7 minimal / mild /
    moderate / severe; PHQ-2 and GAD-2 positive / negative; None for the others.
    """

    total: float | None
    band: str | None


@dataclass(frozen=True)
class _File:
    source: str
    provisional: bool
    panel_loinc: str | None
    total_loinc: str | None
    stem: str | None
    answers: tuple[tuple[str, str], ...] | None  # (label, LOINC answer code) by value
    items: tuple[Item, ...]


def _opt_str(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {key!r} must be a non-empty string or null")
    return value


def _req_str(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = _opt_str(raw, key, where)
    if value is None:
        raise ValueError(f"{where}: {key!r} is required")
    return value


def _req_int(raw: Mapping[str, Any], key: str, where: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: {key!r} must be an integer")
    return value


def _parse_item(raw: Any, where: str) -> Item:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: each item must be a mapping")
    key = _req_str(raw, "key", where)
    where = f"{where} item {key}"
    minimum, maximum = _req_int(raw, "min", where), _req_int(raw, "max", where)
    if minimum >= maximum:
        raise ValueError(f"{where}: min must be below max")
    loinc = raw.get("loinc")
    return Item(
        key=key,
        text=_req_str(raw, "text", where),
        minimum=minimum,
        maximum=maximum,
        loinc=None if loinc is None else str(loinc),
        low_anchor=_opt_str(raw, "low_anchor", where),
        high_anchor=_opt_str(raw, "high_anchor", where),
    )


@cache
def _load(filename: str) -> _File:
    path = _DATA_DIR / filename
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"no instrument data file {filename}") from None
    if not isinstance(raw, Mapping):
        raise ValueError(f"{filename}: expected a mapping at the top level")
    source = _req_str(raw, "source", filename)
    raw_items = raw.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise ValueError(f"{filename}: 'items' must be a non-empty list")
    items = tuple(_parse_item(r, filename) for r in raw_items)
    answers: tuple[tuple[str, str], ...] | None = None
    raw_answers = raw.get("answers")
    if raw_answers is not None:
        if not isinstance(raw_answers, list):
            raise ValueError(f"{filename}: 'answers' must be a list")
        parsed = []
        for expected, answer in enumerate(raw_answers):
            if not isinstance(answer, Mapping) or _req_int(answer, "value", filename) != expected:
                raise ValueError(f"{filename}: answers must be listed by value from 0")
            parsed.append(
                (_req_str(answer, "label", filename), _req_str(answer, "loinc", filename))
            )
        answers = tuple(parsed)
        for item in items:
            if (item.minimum, item.maximum) != (0, len(answers) - 1):
                raise ValueError(f"{filename}: item {item.key} range does not match its answers")
    return _File(
        source=source,
        provisional=bool(raw.get("provisional", False)),
        panel_loinc=_opt_str(raw, "panel_loinc", filename),
        total_loinc=_opt_str(raw, "total_loinc", filename),
        stem=_opt_str(raw, "stem", filename),
        answers=answers,
        items=items,
    )


def _build(
    name: str, language: str, data: _File, items: tuple[Item, ...], **codes: Any
) -> Instrument:
    return Instrument(
        name=name,
        items=items,
        conversational=name in CONVERSATIONAL,
        panel_loinc=codes.get("panel_loinc", data.panel_loinc),
        total_loinc=codes.get("total_loinc", data.total_loinc),
        stem=data.stem,
        answer_labels=None if data.answers is None else tuple(a[0] for a in data.answers),
        language=language,
        answer_loinc=None if data.answers is None else tuple(a[1] for a in data.answers),
        source=data.source,
        provisional=data.provisional,
    )


@cache
def _instrument(name: str, language: str) -> Instrument:
    if name in ("phq9", "gad7", "peg"):
        data = _load(f"{name}.{language}.yaml")
        return _build(name, language, data, data.items)
    if name == "phq2":
        data = _load(f"phq9.{language}.yaml")
        return _build(
            name, language, data, data.items[:2], panel_loinc="55757-9", total_loinc="55758-7"
        )
    if name == "gad2":
        data = _load(f"gad7.{language}.yaml")
        return _build(name, language, data, data.items[:2], panel_loinc=None, total_loinc=None)
    data = _load(f"simple.{language}.yaml")
    by_key = {item.key: item for item in data.items}
    keys = ("mood", "pain") if name == "mood_pain" else (name,)
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise ValueError(f"simple.{language}.yaml has no item {missing[0]!r}")
    items = tuple(by_key[k] for k in keys)
    total = "72514-3" if name == "pain" else None
    return _build(name, language, data, items, panel_loinc=None, total_loinc=total)


def get_instrument(name: str, language: str = "en") -> Instrument:
    """The instrument `name` (see names.INSTRUMENTS) with its wording in `language` ("en", "es").

    Raises ValueError for an unknown name or language, or for a malformed data file.
    """
    if name not in INSTRUMENTS:
        raise ValueError(f"unknown instrument {name!r}; expected one of {', '.join(INSTRUMENTS)}")
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    return _instrument(name, language)


def _band(total: int, bands: tuple[tuple[int, str], ...]) -> str:
    for threshold, label in bands:
        if total >= threshold:
            return label
    return "minimal"


def score(name: str, values: Mapping[str, int]) -> Score:
    """Score `values` (item key -> answer) for instrument `name`.

    Keys of other items are ignored (so a full PHQ-9 answer set also scores `phq2`). A missing
    item gives `Score(None, None)`. Raises ValueError for an unknown instrument, or for an answer
    that is not an integer within its item's range.
    """
    instrument = get_instrument(name)
    answers: list[int] = []
    for item in instrument.items:
        if item.key not in values:
            return Score(None, None)
        value = values[item.key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{item.key}: answer must be an integer, got {value!r}")
        if not item.minimum <= value <= item.maximum:
            raise ValueError(f"{item.key}: {value} is outside {item.minimum}-{item.maximum}")
        answers.append(value)
    total = sum(answers)
    if name == "phq9":
        return Score(float(total), _band(total, PHQ9_BANDS))
    if name == "gad7":
        return Score(float(total), _band(total, GAD7_BANDS))
    if name in ("phq2", "gad2"):
        return Score(float(total), "positive" if total >= SCREEN_CUTOFF else "negative")
    if name == "peg":
        return Score(total / len(answers), None)
    if name == "mood_pain":
        return Score(None, None)
    return Score(float(total), None)  # mood, pain, sleep: the one answer


def answer_key(instrument: Instrument, item: Item) -> str:
    """The reply key shown with an item in an SMS.

    Labelled options: "0=Not at all 1=Several days 2=More than half the days 3=Nearly every day";
    an anchored scale: "0=No pain 10=Pain as bad as you can imagine"; otherwise "0-10".
    """
    if instrument.answer_labels is not None:
        return " ".join(f"{value}={label}" for value, label in enumerate(instrument.answer_labels))
    if item.low_anchor and item.high_anchor:
        return f"{item.minimum}={item.low_anchor} {item.maximum}={item.high_anchor}"
    return f"{item.minimum}-{item.maximum}"


def answer_options(instrument: Instrument, item: Item) -> tuple[tuple[int, str], ...]:
    """Every accepted answer as (value, label), for one-click answer links in an email.

    Labelled options keep their published label; a numeric scale is labelled by its number,
    with the anchors on the two ends ("0 (No pain)", "1", ..., "10 (Pain as bad as ...)").
    """
    options: list[tuple[int, str]] = []
    for value in range(item.minimum, item.maximum + 1):
        if instrument.answer_labels is not None:
            label = instrument.answer_labels[value]
        elif value == item.minimum and item.low_anchor:
            label = f"{value} ({item.low_anchor})"
        elif value == item.maximum and item.high_anchor:
            label = f"{value} ({item.high_anchor})"
        else:
            label = str(value)
        options.append((value, label))
    return tuple(options)


def is_complete(name: str, values: Mapping[str, int]) -> bool:
    """True when every item of instrument `name` has a value in `values`."""
    return all(key in values for key in get_instrument(name).keys)
