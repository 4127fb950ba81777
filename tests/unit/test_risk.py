"""Risk language in two tiers (worker/domain/risk.py) and an opt-out inside a longer text
(keywords.find_opt_out), held to the thresholds of issue 9 on the project's own corpus."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.risk_corpus import CORPUS
from tests.unit.risk_report import MUST_BE_URGENT, figures, main
from worker.domain.keywords import classify_keyword, detect_crisis, find_opt_out
from worker.domain.replies import parse_answer
from worker.domain.risk import assess_risk, normal_forms

# --- the corpus --------------------------------------------------------------------------------


def test_the_corpus_is_big_varied_and_without_repeats() -> None:
    texts = [t for texts in CORPUS.values() for t in texts]
    assert len(texts) >= 300
    assert len(set(texts)) == len(texts), "a text in two places would count twice"
    assert set(CORPUS) == {
        "explicit",
        "typos_leet",
        "means_plan",
        "spanish",
        "indirect",
        "lookalike",
        "ordinary",
    }
    assert all(len(CORPUS[c]) >= 40 for c in CORPUS)


@pytest.mark.parametrize("category", MUST_BE_URGENT)
def test_explicit_typed_means_and_spanish_texts_are_all_urgent(category: str) -> None:
    row = figures(category, CORPUS[category])
    assert row.misses == ()
    assert row.urgent_rate == 1.0


def test_indirect_language_is_at_least_high_for_three_quarters() -> None:
    row = figures("indirect", CORPUS["indirect"])
    assert row.high_rate >= 0.75, row.misses
    # Spanish indirect is held to the same level as English.
    spanish = [t for t in CORPUS["indirect"] if _spanish(t)]
    assert len(spanish) >= 20
    assert figures("indirect", spanish).high_rate >= 0.75


def test_look_alikes_raise_at_most_ten_percent_false_urgent() -> None:
    row = figures("lookalike", CORPUS["lookalike"])
    assert row.urgent_rate <= 0.10, row.misses
    # The accepted ones are the documented choices: negations are kept (CLINICAL.md),
    # "rather die" hyperbole and "kms" after a non-number are read as risk.
    assert set(row.misses) <= {
        "not suicidal, just tired",
        "I'm not suicidal, don't worry",
        "I'd rather die than go to the dentist",
        "my kms are up, walked a lot",
    }


def test_ordinary_answers_match_nothing() -> None:
    row = figures("ordinary", CORPUS["ordinary"])
    assert row.misses == ()


def test_the_report_command_prints_every_category(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--misses"]) == 0
    out = capsys.readouterr().out
    for category in CORPUS:
        assert category in out
    assert "miss [lookalike]" in out


def _spanish(text: str) -> bool:
    match = assess_risk(text)
    return match is not None and match.language == "es"


# --- what a match says -------------------------------------------------------------------------


def test_a_match_carries_tier_category_evidence_and_language() -> None:
    match = assess_risk("going to take all my oxy tonight and not wake up")
    assert match is not None
    assert (match.tier, match.category, match.language) == ("crisis", "means_plan", "en")
    assert "oxy" in match.phrase
    with pytest.raises(dataclasses.FrozenInstanceError):
        match.tier = "possible_risk"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "tier", "category", "language"),
    [
        ("i wnat to die", "crisis", "explicit", "en"),
        ("want to d1e", "crisis", "explicit", "en"),
        ("took 30 of my sleeping pills", "crisis", "means_plan", "en"),
        ("I bought a gun to end things", "crisis", "means_plan", "en"),
        ("me voy a tomar todas las pastillas", "crisis", "means_plan", "es"),
        ("take care of my kids for me", "crisis", "goodbye", "en"),
        ("i cut myself last night", "crisis", "self_harm", "en"),
        ("what's the point", "possible_risk", "hopelessness", "en"),
        ("I'm a burden to my family", "possible_risk", "burden", "en"),
        ("soy una carga para todos", "possible_risk", "burden", "es"),
        ("No aguanto más", "possible_risk", "hopelessness", "es"),
        ("nobody would even notice if I was gone", "possible_risk", "hopelessness", "en"),
        ("i'm not going to be here much longer", "possible_risk", "goodbye", "en"),
    ],
)
def test_the_examples_from_the_issue_get_their_tier(
    text: str, tier: str, category: str, language: str
) -> None:
    match = assess_risk(text)
    assert match is not None
    assert (match.tier, match.category, match.language) == (tier, category, language)
    assert match.phrase in " ".join(normal_forms(text)), "the evidence is as matched"


def test_detect_crisis_reports_the_crisis_tier_only() -> None:
    assert detect_crisis("took 30 of my sleeping pills") == "pills with a count"
    assert detect_crisis("i wnat to die") == "want to die"
    assert detect_crisis("what's the point") is None
    assert detect_crisis("4 7") is None


# --- normalisation and its guards --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("want to d1e", "want to die"),
        ("k!ll mys3lf", "kill myself"),
        ("$uicide", "suicide"),
        ("killmyself", "kill myself"),
        ("iwanttodie", "i want to die"),
        ("i wnat to die", "i want to die"),
        ("k m s", "kms"),
        ("take my \U0001f48a", "take my pillemoji"),
        ("me kiero morir", "me quiero morir"),
        ("thinking of 0verdosing", "thinking of overdosing"),
    ],
)
def test_the_repaired_readings(text: str, reading: str) -> None:
    assert reading in normal_forms(text)


@pytest.mark.parametrize(
    "text",
    ["4 7", "m4 p7", "mood 4 pain 7", "10kms", "took 30mg", "pain 8/10", "3am", "1st visit"],
)
def test_numbers_are_never_turned_into_letters_outside_a_word(text: str) -> None:
    numbers = [t for t in text.replace("/", " ").split() if t.isdigit()]
    for form in normal_forms(text):
        assert all(n in form.split() for n in numbers), form
    assert assess_risk(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "on a diet this week",
        "my mom died of cancer last year, mood 5",
        "died of laughter lol",
        "I'm dying to get my next infusion",
        "dye my hair",
        "i went to die hard 2 with my son",
        "wanted to diet",
        "skill myself up",
        "the homeless shelter was full",
        "the overdue bill",
        "took 2 tylenol",
        "took 10 mg of oxy, pain 7",
        "took all my meds this morning",
        "what's the point of this survey?",
    ],
)
def test_look_alikes_of_the_key_words_are_not_risk(text: str) -> None:
    assert assess_risk(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "2 9 i can't take it anymore",
        "want to d1e",
        "4 i want to die 7",
        "pain 1 want to die",
    ],
)
def test_a_risk_text_may_carry_numbers_the_answer_parser_would_take(text: str) -> None:
    # Why the pipeline must not read it as an answer: the parser alone would find numbers.
    assert assess_risk(text) is not None
    parsed = parse_answer(text, ["mood", "pain"], 0, 10)
    assert parsed.values or parsed.problem is not None


def test_hostile_and_long_bodies_are_safe() -> None:
    assert assess_risk("x" * 5000) is None
    assert assess_risk("\x00\x01\x1b[31m") is None
    assert assess_risk("\U0001f48a" * 300) is not None  # a wall of pill emoji is risk
    long = "ok " * 1500 + "I want to die"
    assert assess_risk(long) is not None
    assert assess_risk("<p>I want to <b>d1e</b></p>") is not None


# --- an opt-out inside a longer text -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "STOP. I want to die",
        "stop texting me i want to kill myself",
        "Stop!!! i want to kms",
        "please stop texting me, i can't take it anymore",
        "i want to die. unsubscribe",
        "i want to die. just stop",
        "basta. me quiero morir",
        "no más mensajes, ya no quiero vivir",
        "dejen de escribirme quiero morir",
    ],
)
def test_an_opt_out_is_found_inside_a_crisis_text(text: str) -> None:
    assert classify_keyword(text) is None, "the whole-message rule does not see it"
    assert find_opt_out(text)


@pytest.mark.parametrize(
    "text",
    [
        "end it all",
        "para que seguir",
        "i want the pain to stop. i want to die",
        "my pain won't stop i want to die",
        "quit this life",
        "make it stop",
        "I can't stop crying, I want to die",
        "cancel my life",
    ],
)
def test_stop_as_an_ordinary_word_is_not_an_opt_out(text: str) -> None:
    assert not find_opt_out(text)


def test_a_whole_message_opt_out_is_found_too() -> None:
    assert find_opt_out("STOP") and find_opt_out("unsubscribe please")
