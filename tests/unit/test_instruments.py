"""Instrument data (wording, LOINC codes) and scoring, table-driven."""

from __future__ import annotations

import subprocess
import sys

import pytest

from worker.domain.instruments import (
    Instrument,
    Score,
    answer_key,
    answer_options,
    get_instrument,
    is_complete,
    score,
)
from worker.domain.names import INSTRUMENTS, LANGUAGES
from worker.domain.sms_text import is_gsm7

# name, item keys, conversational, panel LOINC, total LOINC
CATALOGUE = [
    ("mood", ("mood",), False, None, None),
    ("pain", ("pain",), False, None, "72514-3"),
    ("mood_pain", ("mood", "pain"), False, None, None),
    ("sleep", ("sleep",), False, None, None),
    ("phq2", ("phq9_1", "phq9_2"), True, "55757-9", "55758-7"),
    ("phq9", tuple(f"phq9_{i}" for i in range(1, 10)), True, "44249-1", "44261-6"),
    ("gad2", ("gad7_1", "gad7_2"), True, None, None),
    ("gad7", tuple(f"gad7_{i}" for i in range(1, 8)), True, "69737-5", "70274-6"),
    ("peg", ("peg_p", "peg_e", "peg_g"), True, "91148-7", "91147-9"),
]

ITEM_LOINC = {
    "phq9_1": "44250-9",
    "phq9_2": "44255-8",
    "phq9_3": "44259-0",
    "phq9_4": "44254-1",
    "phq9_5": "44251-7",
    "phq9_6": "44258-2",
    "phq9_7": "44252-5",
    "phq9_8": "44253-3",
    "phq9_9": "44260-8",
    "gad7_1": "69725-0",
    "gad7_2": "68509-9",
    "gad7_3": "69733-4",
    "gad7_4": "69734-2",
    "gad7_5": "69735-9",
    "gad7_6": "69689-8",
    "gad7_7": "69736-7",
    "peg_p": "75893-8",
    "peg_e": "91145-3",
    "peg_g": "91146-1",
    "pain": "72514-3",
    "mood": None,
    "sleep": None,
}

PHQ_GAD_ANSWERS = {
    "en": ("Not at all", "Several days", "More than half the days", "Nearly every day"),
    "es": ("Ningún día", "Varios días", "Más de la mitad de los días", "Casi todos los días"),
}
ANSWER_LOINC = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")


def test_the_catalogue_covers_every_contract_instrument() -> None:
    assert tuple(row[0] for row in CATALOGUE) == INSTRUMENTS


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("name", "keys", "conversational", "panel", "total"), CATALOGUE)
def test_instrument_shape_and_codes(
    name: str,
    keys: tuple[str, ...],
    conversational: bool,
    panel: str | None,
    total: str | None,
    language: str,
) -> None:
    instrument = get_instrument(name, language)
    assert isinstance(instrument, Instrument)
    assert instrument.name == name
    assert instrument.language == language
    assert instrument.keys == keys
    assert instrument.conversational is conversational
    assert instrument.panel_loinc == panel
    assert instrument.total_loinc == total
    assert instrument.source.strip()
    for item in instrument.items:
        assert item.loinc == ITEM_LOINC[item.key]
        assert item.text.strip()


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ["phq2", "phq9", "gad2", "gad7"])
def test_phq_and_gad_items_are_answered_0_to_3_with_the_loinc_answer_list(
    name: str, language: str
) -> None:
    instrument = get_instrument(name, language)
    assert instrument.answer_labels == PHQ_GAD_ANSWERS[language]
    assert instrument.answer_loinc == ANSWER_LOINC
    assert instrument.stem
    assert all((i.minimum, i.maximum) == (0, 3) for i in instrument.items)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ["mood", "pain", "sleep", "peg"])
def test_numeric_items_run_0_to_10_with_named_ends(name: str, language: str) -> None:
    instrument = get_instrument(name, language)
    assert instrument.answer_labels is None
    for item in instrument.items:
        assert (item.minimum, item.maximum) == (0, 10)
        assert item.low_anchor and item.high_anchor


def test_published_english_wording_is_kept() -> None:
    phq9 = get_instrument("phq9", "en")
    assert phq9.stem == (
        "Over the last 2 weeks, how often have you been bothered by any of the following problems?"
    )
    assert phq9.item("phq9_1").text == "Little interest or pleasure in doing things"
    assert phq9.item("phq9_9").text == (
        "Thoughts that you would be better off dead, or of hurting yourself in some way"
    )
    gad7 = get_instrument("gad7", "en")
    assert gad7.item("gad7_2").text == "Not being able to stop or control worrying"
    assert gad7.item("gad7_7").text == "Feeling afraid as if something awful might happen"
    peg = get_instrument("peg", "en")
    assert peg.item("peg_p").text == (
        "What number best describes your pain on average in the past week?"
    )
    assert peg.item("peg_g").text == (
        "What number best describes how, during the past week, pain has interfered with your "
        "general activity?"
    )


def test_published_spanish_wording_is_kept() -> None:
    phq9 = get_instrument("phq9", "es")
    assert phq9.stem == (
        "Durante las últimas 2 semanas, ¿qué tan seguido ha tenido molestias debido a los "
        "siguientes problemas?"
    )
    assert phq9.item("phq9_9").text == (
        "Pensamientos de que estaría mejor muerto(a) o de lastimarse de alguna manera"
    )
    gad7 = get_instrument("gad7", "es")
    assert gad7.item("gad7_1").text == (
        "Se ha sentido nervioso(a), ansioso(a) o con los nervios de punta"
    )


def test_phq2_and_gad2_reuse_the_first_two_items_of_the_full_forms() -> None:
    for short, full in (("phq2", "phq9"), ("gad2", "gad7")):
        for language in LANGUAGES:
            assert get_instrument(short, language).items == get_instrument(full, language).items[:2]


def test_spanish_and_english_share_keys_codes_and_ranges() -> None:
    for name in INSTRUMENTS:
        en, es = get_instrument(name, "en"), get_instrument(name, "es")
        assert [(i.key, i.loinc, i.minimum, i.maximum) for i in en.items] == [
            (i.key, i.loinc, i.minimum, i.maximum) for i in es.items
        ]
        assert [i.text for i in en.items] != [i.text for i in es.items]


def test_only_the_spanish_peg_is_flagged_provisional() -> None:
    flagged = {
        (name, language)
        for name in INSTRUMENTS
        for language in LANGUAGES
        if get_instrument(name, language).provisional
    }
    assert flagged == {("peg", "es")}


def test_english_wording_is_gsm7_so_sms_stay_cheap() -> None:
    for name in INSTRUMENTS:
        instrument = get_instrument(name, "en")
        texts = [i.text for i in instrument.items] + [instrument.stem or ""]
        texts += list(instrument.answer_labels or ())
        assert all(is_gsm7(t) for t in texts), name


@pytest.mark.parametrize(
    ("name", "language"),
    [("phq10", "en"), ("PHQ9", "en"), ("", "en"), ("phq9", "fr"), ("phq9", "EN"), ("mood", "")],
)
def test_unknown_instrument_or_language_is_a_value_error(name: str, language: str) -> None:
    with pytest.raises(ValueError):
        get_instrument(name, language)


def test_data_files_are_read_lazily_not_at_import() -> None:
    code = (
        "import worker.domain.instruments as m; "
        "print(m._load.cache_info().currsize, m._instrument.cache_info().currsize)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0"]


def _all(prefix: str, count: int, value: int) -> dict[str, int]:
    return {f"{prefix}_{i}": value for i in range(1, count + 1)}


def _phq9_total(total: int) -> dict[str, int]:
    values = _all("phq9", 9, 0)
    for i in range(1, 10):
        step = min(3, total)
        values[f"phq9_{i}"] = step
        total -= step
    return values


def _gad7_total(total: int) -> dict[str, int]:
    values = _all("gad7", 7, 0)
    for i in range(1, 8):
        step = min(3, total)
        values[f"gad7_{i}"] = step
        total -= step
    return values


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately_severe"),
        (19, "moderately_severe"),
        (20, "severe"),
        (27, "severe"),
    ],
)
def test_phq9_bands_at_their_edges(total: int, band: str) -> None:
    assert score("phq9", _phq9_total(total)) == Score(float(total), band)


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ],
)
def test_gad7_bands_at_their_edges(total: int, band: str) -> None:
    assert score("gad7", _gad7_total(total)) == Score(float(total), band)


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("phq2", {"phq9_1": 1, "phq9_2": 1}, Score(2.0, "negative")),
        ("phq2", {"phq9_1": 2, "phq9_2": 1}, Score(3.0, "positive")),
        ("phq2", {"phq9_1": 3, "phq9_2": 3}, Score(6.0, "positive")),
        ("gad2", {"gad7_1": 0, "gad7_2": 2}, Score(2.0, "negative")),
        ("gad2", {"gad7_1": 1, "gad7_2": 2}, Score(3.0, "positive")),
        ("peg", {"peg_p": 6, "peg_e": 7, "peg_g": 4}, Score(17 / 3, None)),
        ("peg", {"peg_p": 0, "peg_e": 0, "peg_g": 0}, Score(0.0, None)),
        ("peg", {"peg_p": 10, "peg_e": 10, "peg_g": 10}, Score(10.0, None)),
        ("mood", {"mood": 7}, Score(7.0, None)),
        ("pain", {"pain": 8}, Score(8.0, None)),
        ("sleep", {"sleep": 0}, Score(0.0, None)),
        ("mood_pain", {"mood": 6, "pain": 3}, Score(None, None)),
        # A full PHQ-9 answer set also scores the PHQ-2 from its first two items.
        ("phq2", {**_all("phq9", 9, 1), "phq9_2": 2}, Score(3.0, "positive")),
    ],
)
def test_scores(name: str, values: dict[str, int], expected: Score) -> None:
    assert score(name, values) == expected


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("phq9", {k: v for k, v in _all("phq9", 9, 3).items() if k != "phq9_9"}),
        ("gad7", {"gad7_1": 3}),
        ("peg", {"peg_p": 5, "peg_e": 5}),
        ("phq2", {"phq9_2": 1}),
        ("mood", {}),
        ("mood_pain", {"mood": 5}),
    ],
)
def test_an_incomplete_set_has_no_total(name: str, values: dict[str, int]) -> None:
    assert score(name, values) == Score(None, None)
    assert not is_complete(name, values)


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("phq9", {**_all("phq9", 9, 0), "phq9_9": 4}),
        ("phq2", {"phq9_1": -1, "phq9_2": 0}),
        ("pain", {"pain": 11}),
        ("mood", {"mood": True}),
        ("peg", {"peg_p": 5, "peg_e": 5, "peg_g": 5.5}),
        ("nope", {}),
    ],
)
def test_invalid_answers_are_value_errors(name: str, values: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        score(name, values)  # type: ignore[arg-type]


def test_answer_keys_for_sms() -> None:
    phq9 = get_instrument("phq9")
    assert answer_key(phq9, phq9.items[8]) == (
        "0=Not at all 1=Several days 2=More than half the days 3=Nearly every day"
    )
    peg = get_instrument("peg")
    assert answer_key(peg, peg.items[0]) == "0=No pain 10=Pain as bad as you can imagine"


def test_answer_options_for_email_links() -> None:
    phq9 = get_instrument("phq9", "es")
    assert answer_options(phq9, phq9.items[0])[3] == (3, "Casi todos los días")
    pain = get_instrument("pain")
    options = answer_options(pain, pain.items[0])
    assert [v for v, _ in options] == list(range(11))
    assert options[0] == (0, "0 (no pain)")
    assert options[5] == (5, "5")
    assert options[10] == (10, "10 (worst pain imaginable)")
