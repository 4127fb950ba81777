"""Follow-up rules: immediate flags, worsening against the patient's own history, missed check-ins."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from worker.domain.names import FOLLOWUP_REASONS, SEVERITIES
from worker.domain.rules import (
    Flag,
    Observation,
    RuleConfig,
    evaluate_answer,
    evaluate_worsening,
    missed_checkins,
    rules_from_mapping,
)

T0 = datetime(2026, 3, 1, 19, 0, tzinfo=UTC)


def phq9(*answers: int) -> dict[str, int]:
    return {f"phq9_{i}": v for i, v in enumerate(answers, start=1)}


def gad7(*answers: int) -> dict[str, int]:
    return {f"gad7_{i}": v for i, v in enumerate(answers, start=1)}


def summary(flags: list[Flag]) -> list[tuple[str, str]]:
    return [(f.reason, f.severity) for f in flags]


def day(n: float, item: str, value: float) -> Observation:
    return Observation(item, value, T0 + timedelta(days=n))


def series(item: str, values: list[float], start: float = 0) -> list[Observation]:
    """One observation a day from day `start`."""
    return [day(start + i, item, v) for i, v in enumerate(values)]


# --- evaluate_answer: the thresholds, one edge at a time

IMMEDIATE = [
    pytest.param("mood", {"mood": 2}, [("low_mood", "high")], id="mood-2-high"),
    pytest.param("mood", {"mood": 0}, [("low_mood", "high")], id="mood-0-high"),
    pytest.param("mood", {"mood": 3}, [("low_mood", "routine")], id="mood-3-routine"),
    pytest.param("mood", {"mood": 4}, [], id="mood-4-none"),
    pytest.param("mood", {"mood": 10}, [], id="mood-10-none"),
    pytest.param("pain", {"pain": 7}, [], id="pain-7-none"),
    pytest.param("pain", {"pain": 8}, [("high_pain", "high")], id="pain-8-high"),
    pytest.param("pain", {"pain": 10}, [("high_pain", "high")], id="pain-10-high"),
    pytest.param(
        "mood_pain",
        {"mood": 3, "pain": 9},
        [("high_pain", "high"), ("low_mood", "routine")],
        id="mood_pain-both-most-severe-first",
    ),
    pytest.param("mood_pain", {"mood": 5, "pain": 5}, [], id="mood_pain-none"),
    pytest.param("mood_pain", {"pain": 8}, [("high_pain", "high")], id="mood_pain-partial"),
    pytest.param("sleep", {"sleep": 0}, [], id="sleep-tracked-only"),
    pytest.param("peg", {"peg_p": 10, "peg_e": 10, "peg_g": 10}, [], id="peg-none-immediate"),
    pytest.param(
        "phq9",
        phq9(1, 1, 1, 1, 1, 0, 0, 0, 1),
        [("phq9_item9", "urgent")],
        id="phq9-item9-1-total-6",
    ),
    pytest.param(
        "phq9", phq9(3, 3, 3, 3, 3, 3, 2, 0, 0), [("positive_screen", "high")], id="phq9-total-20"
    ),
    pytest.param("phq9", phq9(3, 3, 3, 3, 3, 3, 1, 0, 0), [], id="phq9-total-19"),
    pytest.param("phq9", phq9(0, 0, 0, 0, 0, 0, 0, 0, 0), [], id="phq9-all-zero"),
    pytest.param(
        "phq9",
        phq9(3, 3, 3, 3, 3, 3, 3, 3, 3),
        [("phq9_item9", "urgent"), ("positive_screen", "high")],
        id="phq9-item9-and-severe-both",
    ),
    pytest.param("phq9", {"phq9_9": 1}, [("phq9_item9", "urgent")], id="phq9-only-item9-answered"),
    pytest.param("phq9", {"phq9_9": 0}, [], id="phq9-only-item9-zero"),
    pytest.param("phq9", phq9(3, 3, 3, 3, 3, 3, 3, 3), [], id="phq9-partial-no-total-rule"),
    pytest.param("phq2", phq9(2, 1), [("positive_screen", "routine")], id="phq2-3"),
    pytest.param("phq2", phq9(1, 1), [], id="phq2-2"),
    pytest.param("phq2", {"phq9_1": 3}, [], id="phq2-partial"),
    pytest.param("gad2", gad7(1, 2), [("positive_screen", "routine")], id="gad2-3"),
    pytest.param("gad2", gad7(2, 0), [], id="gad2-2"),
    pytest.param("gad7", gad7(3, 3, 3, 3, 3, 0, 0), [("positive_screen", "high")], id="gad7-15"),
    pytest.param("gad7", gad7(3, 3, 3, 3, 2, 0, 0), [], id="gad7-14"),
    pytest.param("gad7", gad7(3, 3, 3, 3, 3, 3), [], id="gad7-partial"),
]


@pytest.mark.parametrize(("instrument", "values", "expected"), IMMEDIATE)
def test_each_threshold_edge(
    instrument: str, values: Mapping[str, int], expected: list[tuple[str, str]]
) -> None:
    assert summary(evaluate_answer(instrument, values)) == expected


# instrument, answers, expected detail (a subset of the flag's detail)
DETAILS = [
    pytest.param(
        "phq9",
        phq9(1, 1, 1, 1, 1, 0, 0, 0, 1),
        {
            "item": "phq9_9",
            "value": 1,
            "loinc": "44260-8",
            "total": 6,
            "band": "mild",
            "total_loinc": "44261-6",
            "complete": True,
        },
        id="item9-loinc-and-total",
    ),
    pytest.param(
        "phq9",
        {"phq9_9": 2},
        {"item": "phq9_9", "value": 2, "loinc": "44260-8", "complete": False},
        id="item9-partial",
    ),
    pytest.param(
        "phq9",
        phq9(3, 3, 3, 3, 3, 3, 2, 0, 0),
        {"instrument": "phq9", "total": 20, "band": "severe", "threshold": 20, "loinc": "44261-6"},
        id="phq9-total",
    ),
    pytest.param(
        "phq2",
        phq9(2, 1),
        {"instrument": "phq2", "total": 3, "offer": "phq9", "loinc": "55758-7", "threshold": 3},
        id="phq2-offers-phq9",
    ),
    pytest.param(
        "gad2",
        gad7(3, 0),
        {"instrument": "gad2", "total": 3, "offer": "gad7", "threshold": 3},
        id="gad2-offers-gad7",
    ),
    pytest.param(
        "gad7",
        gad7(3, 3, 3, 3, 3, 3, 3),
        {"instrument": "gad7", "total": 21, "band": "severe", "loinc": "70274-6"},
        id="gad7-total",
    ),
    pytest.param(
        "pain",
        {"pain": 9},
        {"instrument": "pain", "item": "pain", "value": 9, "threshold": 8, "loinc": "72514-3"},
        id="pain",
    ),
    pytest.param(
        "mood",
        {"mood": 1},
        {"instrument": "mood", "item": "mood", "value": 1, "threshold": 2},
        id="mood-high",
    ),
    pytest.param("mood", {"mood": 3}, {"threshold": 3}, id="mood-routine"),
]


@pytest.mark.parametrize(("instrument", "values", "expected"), DETAILS)
def test_the_detail_carries_the_evidence_and_loinc_codes(
    instrument: str, values: Mapping[str, int], expected: dict[str, object]
) -> None:
    (flag, *_) = evaluate_answer(instrument, values)
    assert flag.detail.items() >= expected.items()
    json.dumps(flag.detail)  # JSON-ready


def test_positive_screens_on_full_questionnaires_offer_nothing() -> None:
    (flag,) = evaluate_answer("phq9", phq9(3, 3, 3, 3, 3, 3, 2, 0, 0))
    assert "offer" not in flag.detail


def test_mood_has_no_loinc_code_in_its_detail() -> None:
    (flag,) = evaluate_answer("mood", {"mood": 0})
    assert "loinc" not in flag.detail


def test_a_clinic_can_move_every_immediate_threshold() -> None:
    config = RuleConfig(
        low_mood_high=1,
        low_mood_routine=4,
        high_pain=9,
        phq9_high_total=15,
        gad7_high_total=10,
        phq2_positive=4,
        gad2_positive=2,
    )
    assert summary(evaluate_answer("mood", {"mood": 2}, config)) == [("low_mood", "routine")]
    assert summary(evaluate_answer("mood", {"mood": 4}, config)) == [("low_mood", "routine")]
    assert summary(evaluate_answer("mood", {"mood": 1}, config)) == [("low_mood", "high")]
    assert evaluate_answer("pain", {"pain": 8}, config) == []
    assert summary(evaluate_answer("phq9", phq9(3, 3, 3, 3, 3, 0, 0, 0, 0), config)) == [
        ("positive_screen", "high")
    ]
    assert summary(evaluate_answer("gad7", gad7(3, 3, 3, 1, 0, 0, 0), config)) == [
        ("positive_screen", "high")
    ]
    assert evaluate_answer("phq2", phq9(2, 1), config) == []
    assert summary(evaluate_answer("gad2", gad7(1, 1), config)) == [("positive_screen", "routine")]


def test_no_configuration_weakens_item_9() -> None:
    config = RuleConfig(phq9_high_total=28)
    assert summary(evaluate_answer("phq9", {"phq9_9": 1}, config)) == [("phq9_item9", "urgent")]


def test_item_9_is_never_ignored_even_under_another_instrument() -> None:
    assert summary(evaluate_answer("phq2", {**phq9(0, 0), "phq9_9": 1})) == [
        ("phq9_item9", "urgent")
    ]


def test_keys_of_other_instruments_are_ignored() -> None:
    assert evaluate_answer("mood", {"mood": 7, "pain": 10}) == []


@pytest.mark.parametrize(
    ("instrument", "values", "message"),
    [
        pytest.param("mood", {"mood": 11}, "outside 0-10", id="mood-above-range"),
        pytest.param("pain", {"pain": -1}, "outside 0-10", id="pain-below-range"),
        pytest.param("phq9", {"phq9_9": 4}, "outside 0-3", id="item9-above-range"),
        pytest.param("phq9", {"phq9_1": True}, "must be an integer", id="bool-answer"),
        pytest.param("phq7", {}, "unknown instrument", id="unknown-instrument"),
    ],
)
def test_it_refuses_bad_answers(instrument: str, values: Mapping[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_answer(instrument, values)


def test_every_flag_uses_contract_codes() -> None:
    for param in IMMEDIATE:
        instrument, values, _ = param.values
        for flag in evaluate_answer(instrument, values):  # type: ignore[arg-type]
            assert flag.reason in FOLLOWUP_REASONS
            assert flag.severity in SEVERITIES


# --- evaluate_worsening: pain against its baseline

FIRST_WEEK_OF_5 = series("pain", [5, 5, 5])  # days 0-2, mean 5
FIRST_WEEK_OF_7 = series("pain", [7, 7, 7])  # mean 7

PAIN = [
    pytest.param(series("pain", [5, 5]), day(10, "pain", 9), False, id="baseline-too-short"),
    pytest.param([], day(10, "pain", 10), False, id="no-history"),
    pytest.param(FIRST_WEEK_OF_7, day(10, "pain", 9), False, id="plus-2-but-29pct"),
    pytest.param(FIRST_WEEK_OF_7, day(10, "pain", 10), True, id="plus-3-and-43pct"),
    pytest.param(FIRST_WEEK_OF_5, day(10, "pain", 7), True, id="plus-2-exactly-and-40pct"),
    pytest.param(FIRST_WEEK_OF_5, day(10, "pain", 6), False, id="plus-1"),
    pytest.param(series("pain", [0, 0, 0]), day(10, "pain", 2), True, id="from-zero-plus-2"),
    pytest.param(series("pain", [0, 0, 0]), day(10, "pain", 1), False, id="from-zero-plus-1"),
    pytest.param(FIRST_WEEK_OF_5, day(10, "pain", 3), False, id="better"),
    pytest.param(
        [*FIRST_WEEK_OF_5, *series("pain", [8, 8, 8], start=20)],
        day(23, "pain", 8),
        True,
        id="first-week-baseline-not-the-recent-days",
    ),
    pytest.param(
        [*series("pain", [5, 5]), day(10, "pain", 5), day(3, "sleep", 0)],
        day(10, "pain", 9),
        False,
        id="same-instant-and-other-items-do-not-count",
    ),
]


@pytest.mark.parametrize(("history", "new", "flagged"), PAIN)
def test_pain_worsening_against_the_first_week(
    history: list[Observation], new: Observation, flagged: bool
) -> None:
    flags = evaluate_worsening(history, new)
    assert summary(flags) == ([("worsening", "routine")] if flagged else [])


def test_the_pain_detail_shows_the_comparison() -> None:
    history = [*series("pain", [6, 7, 8]), *series("pain", [9, 9], start=20)]
    (flag,) = evaluate_worsening(list(reversed(history)), day(30, "pain", 10))
    assert flag.detail == {
        "item": "pain",
        "value": 10,
        "baseline": 7.0,
        "baseline_kind": "first_week",
        "baseline_points": 3,
        "baseline_from": T0.isoformat(),
        "baseline_to": (T0 + timedelta(days=2)).isoformat(),
        "change": 3.0,
        "change_fraction": 0.43,
        "threshold_points": 2.0,
        "threshold_fraction": 0.3,
        "loinc": "72514-3",
    }
    json.dumps(flag.detail)


def test_the_fraction_edge_is_inclusive() -> None:
    config = RuleConfig(pain_worse_fraction=0.5)
    assert evaluate_worsening(FIRST_WEEK_OF_5, day(10, "pain", 7), config) == []  # 40 %
    history = series("pain", [4, 4, 4])
    assert evaluate_worsening(history, day(10, "pain", 6), config) != []  # exactly 50 %


def test_inside_the_first_week_the_preceding_days_are_the_baseline() -> None:
    (flag,) = evaluate_worsening(series("pain", [3, 3, 3]), day(3, "pain", 6))
    assert flag.detail["baseline_kind"] == "preceding"
    assert flag.detail["baseline"] == 3.0


def test_a_sparse_first_week_falls_back_to_the_14_days_before() -> None:
    history = [*series("pain", [9, 9]), *series("pain", [4, 4, 4], start=20)]
    (flag,) = evaluate_worsening(history, day(24, "pain", 7))
    assert flag.detail["baseline_kind"] == "preceding"
    assert flag.detail["baseline_points"] == 3


def test_the_14_day_window_leaves_older_answers_out() -> None:
    history = [*series("pain", [9, 9]), *series("pain", [4, 4], start=20)]
    assert evaluate_worsening(history, day(24, "pain", 7)) == []  # 2 points in 14 days


def test_a_clinic_can_choose_the_preceding_baseline() -> None:
    config = RuleConfig(pain_baseline="preceding")
    history = [*FIRST_WEEK_OF_5, *series("pain", [8, 8, 8], start=20)]
    assert evaluate_worsening(history, day(23, "pain", 8), config) == []
    history = [*series("pain", [1, 1, 1]), *series("pain", [3, 3, 3], start=20)]
    (flag,) = evaluate_worsening(history, day(23, "pain", 6), config)
    assert flag.detail["baseline_kind"] == "preceding"
    assert flag.detail["baseline"] == 3.0


# --- mood against the 7 days before

MOOD = [
    pytest.param(series("mood", [7, 7, 7], start=7), day(10, "mood", 4), True, id="drop-exactly-3"),
    pytest.param(series("mood", [7, 7, 7], start=7), day(10, "mood", 5), False, id="drop-2"),
    pytest.param(series("mood", [6, 7, 8], start=7), day(10, "mood", 3), True, id="drop-4-mean-7"),
    pytest.param(series("mood", [7, 7], start=8), day(10, "mood", 0), False, id="two-points-only"),
    pytest.param(
        [*series("mood", [7, 7], start=0), day(8, "mood", 7)],
        day(10, "mood", 1),
        False,
        id="older-than-7-days-ignored",
    ),
    pytest.param(series("mood", [3, 3, 3], start=7), day(10, "mood", 9), False, id="better"),
]


@pytest.mark.parametrize(("history", "new", "flagged"), MOOD)
def test_mood_worsening_against_the_7_day_mean(
    history: list[Observation], new: Observation, flagged: bool
) -> None:
    flags = evaluate_worsening(history, new)
    assert summary(flags) == ([("worsening", "routine")] if flagged else [])


def test_the_mood_detail_shows_the_mean() -> None:
    (flag,) = evaluate_worsening(series("mood", [6, 7, 8], start=7), day(10, "mood", 4))
    assert (
        flag.detail.items()
        >= {
            "item": "mood",
            "value": 4,
            "baseline": 7.0,
            "baseline_points": 3,
            "change": -3.0,
            "threshold_points": 3.0,
        }.items()
    )


# --- PHQ-9 totals

PHQ9 = [
    pytest.param([4], 9, ["rise_from_lowest"], id="min-4-to-9"),
    pytest.param([4], 8, [], id="min-4-to-8"),
    pytest.param([12, 7], 11, ["back_above_relapse_total"], id="12-7-11-relapse"),
    pytest.param([12, 7], 9, [], id="12-7-9-still-below"),
    pytest.param([12, 14], 16, [], id="never-below-10"),
    pytest.param([18, 4], 10, ["rise_from_lowest", "back_above_relapse_total"], id="both-criteria"),
    pytest.param([], 25, [], id="first-total"),
    pytest.param([20, 15, 12], 16, [], id="still-improving-overall"),
]


@pytest.mark.parametrize(("totals", "new", "criteria"), PHQ9)
def test_phq9_worsening(totals: list[int], new: int, criteria: list[str]) -> None:
    history = [day(7 * i, "phq9_total", v) for i, v in enumerate(totals)]
    flags = evaluate_worsening(history, day(7 * len(totals), "phq9_total", new))
    if not criteria:
        assert flags == []
        return
    (flag,) = flags
    assert (flag.reason, flag.severity) == ("worsening", "high")
    assert flag.detail["criteria"] == criteria
    assert flag.detail["loinc"] == "44261-6"


def test_the_phq9_detail_names_the_lowest_point() -> None:
    history = [day(0, "phq9_total", 12), day(7, "phq9_total", 4), day(14, "phq9_total", 6)]
    (flag,) = evaluate_worsening(history, day(21, "phq9_total", 9))
    assert (
        flag.detail.items()
        >= {
            "lowest": 4,
            "lowest_at": (T0 + timedelta(days=7)).isoformat(),
            "rise": 5,
            "previous": 6,
            "threshold_rise": 5,
        }.items()
    )
    json.dumps(flag.detail)


def test_later_answers_in_the_history_are_not_the_past() -> None:
    history = [day(0, "phq9_total", 4), day(30, "phq9_total", 1)]
    (flag,) = evaluate_worsening(history, day(14, "phq9_total", 9))
    assert flag.detail["lowest"] == 4


def test_worsening_severities_are_configurable() -> None:
    config = RuleConfig(phq9_worsening_severity="routine", pain_worsening_severity="high")
    assert summary(
        evaluate_worsening([day(0, "phq9_total", 4)], day(7, "phq9_total", 9), config)
    ) == [("worsening", "routine")]
    assert summary(evaluate_worsening(FIRST_WEEK_OF_5, day(10, "pain", 8), config)) == [
        ("worsening", "high")
    ]


def test_tracked_items_without_a_rule_give_nothing() -> None:
    history = series("peg_total", [1, 1, 1])
    assert evaluate_worsening(history, day(10, "peg_total", 10)) == []


def test_mixed_zones_compare_as_instants() -> None:
    ny = ZoneInfo("America/New_York")
    history = [Observation("mood", 8, (T0 + timedelta(days=d)).astimezone(ny)) for d in (7, 8, 9)]
    assert evaluate_worsening(history, day(10, "mood", 5)) != []


@pytest.mark.parametrize(
    ("history", "new", "message"),
    [
        pytest.param([], Observation("pian", 3, T0), "unknown item", id="unknown-item"),
        pytest.param([], Observation("pain", 3, datetime(2026, 3, 1)), "aware", id="naive-new"),
        pytest.param(
            [Observation("pain", 3, datetime(2026, 3, 1))],
            Observation("pain", 3, T0),
            "aware",
            id="naive-history",
        ),
        pytest.param([], Observation("pain", float("nan"), T0), "finite", id="nan"),
    ],
)
def test_it_refuses_bad_observations(
    history: list[Observation], new: Observation, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_worsening(history, new)


# --- missed check-ins

MISSED = [
    pytest.param(["expired"] * 3, 3, id="three-expired"),
    pytest.param(["expired"] * 4 + ["answered"], 4, id="four-expired-counted"),
    pytest.param(["expired", "expired", "answered", "expired"], None, id="answer-breaks"),
    pytest.param(["expired", "expired", "partial", "expired"], None, id="partial-breaks"),
    pytest.param(["answered", "expired", "expired", "expired"], None, id="newest-answered"),
    pytest.param(["open", "expired", "expired", "expired"], 3, id="open-is-skipped"),
    pytest.param(["expired", "open", "expired", "expired"], 3, id="open-in-between"),
    pytest.param(["expired", "expired"], None, id="two-only"),
    pytest.param([], None, id="nothing-yet"),
]


@pytest.mark.parametrize(("recent", "count"), MISSED)
def test_missed_checkins(recent: list[str], count: int | None) -> None:
    flag = missed_checkins(recent)
    if count is None:
        assert flag is None
    else:
        assert flag == Flag("missed_checkins", "routine", {"count": count, "threshold": 3})


def test_the_missed_streak_is_configurable() -> None:
    assert missed_checkins(["expired"] * 2, RuleConfig(missed_in_a_row=2)) is not None


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="'cancelled'"):
        missed_checkins(["answered", "cancelled"])


# --- configuration


def test_an_empty_mapping_gives_the_defaults() -> None:
    assert rules_from_mapping({}) == RuleConfig()


def test_a_mapping_sets_fields() -> None:
    config = rules_from_mapping(
        {
            "high_pain": 7,
            "pain_worse_fraction": 0.25,
            "mood_drop_points": 2,
            "pain_baseline": "preceding",
        }
    )
    assert config.high_pain == 7
    assert config.pain_worse_fraction == 0.25
    assert config.mood_drop_points == 2.0
    assert isinstance(config.mood_drop_points, float)
    assert config.pain_baseline == "preceding"


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        pytest.param({"high_pian": 8}, "unknown rule setting 'high_pian'", id="unknown-field"),
        pytest.param({"high_pain": "8"}, "'high_pain' must be an integer", id="string-for-int"),
        pytest.param({"high_pain": 8.5}, "'high_pain' must be an integer", id="float-for-int"),
        pytest.param({"high_pain": True}, "'high_pain' must be an integer", id="bool-for-int"),
        pytest.param(
            {"pain_worse_fraction": "30%"}, "'pain_worse_fraction' must be a number", id="str-float"
        ),
        pytest.param(
            {"pain_worse_fraction": False},
            "'pain_worse_fraction' must be a number",
            id="bool-float",
        ),
        pytest.param({"pain_baseline": 1}, "'pain_baseline' must be a string", id="int-for-str"),
        pytest.param({"pain_baseline": "last_month"}, "pain_baseline must be one of", id="mode"),
        pytest.param(
            {"phq9_worsening_severity": "critical"},
            "phq9_worsening_severity must be one of",
            id="severity",
        ),
        pytest.param(
            {"missed_in_a_row": 0}, "missed_in_a_row must be at least 1", id="zero-streak"
        ),
        pytest.param({"min_points": 0}, "min_points must be at least 1", id="zero-points"),
        pytest.param(
            {"low_mood_high": 4}, "low_mood_high .* must not be above low_mood_routine", id="order"
        ),
        pytest.param(
            {"pain_worse_points": -1}, "pain_worse_points must be a finite number", id="negative"
        ),
    ],
)
def test_rules_from_mapping_names_the_bad_field(mapping: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rules_from_mapping(mapping)


def test_the_config_is_frozen() -> None:
    config = RuleConfig()
    with pytest.raises(AttributeError):
        config.high_pain = 5  # type: ignore[misc]
