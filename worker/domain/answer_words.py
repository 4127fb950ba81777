"""PHQ and GAD answers in words, in English and Spanish, and what counts as a clear "no" to
PHQ-9 item 9.

The published answers are 0 = not at all, 1 = several days, 2 = more than half the days,
3 = nearly every day (Spanish: ningún día, varios días, más de la mitad de los días, casi todos
los días). Patients also write "never", "some days", "most days", "every day", "all the time",
"nunca", "a veces", "todos los días"; CLINICAL.md asks for all of these. Matching is on
accent-folded, lowercased words, so "Más de la mitad de los días" and "mas de la mitad de los
dias" are the same. Choices, each tested:

- Phrases of two or more words are read anywhere in the reply ("I'd say most days"). A single
  word ("never", "sometimes", "daily", "nunca", "siempre") only when it is the whole reply, give
  or take a few filler words ("sometimes I guess"): "I never sleep" to the sleep item must not
  read as 0.
- A phrase right after "not", "no", "never", "hardly", "almost" or "nunca" ("not every day",
  "no todos los días") is no answer: the reply is ambiguous, so the patient is asked once.
- "no" alone is not read as 0 for an ordinary item ("no" to "little interest or pleasure" could
  mean either); for item 9 it is a clear 0 (below).
- "occasionally", "rarely", "a little", "kind of", "half the days" are not mapped: too far from
  any published answer to pick one for the patient.

PHQ-9 item 9 (thoughts of being better off dead or of self-harm) is read strictly: only a reply
made of nothing but a zero answer ("0", "no", "nope", "never", "none", "not at all", "nunca",
"para nada", "ningún día") and politeness ("thanks", "ok", "gracias") is a clear 0. Anything
else to item 9, a "yes", "sometimes", a question, "0 but I think about it", starts the crisis
path: a false alarm costs a clinician a look, a miss costs far more.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from worker.domain.keywords import normalize, strip_accents

# Accent-folded, lowercased. Longer phrases win over the shorter ones inside them.
_PHRASES: Final[Mapping[str, int]] = MappingProxyType(
    {
        # 0
        "not at all": 0,
        "none at all": 0,
        "no days": 0,
        "zero days": 0,
        "para nada": 0,
        "ningun dia": 0,
        # 1
        "several days": 1,
        "a few days": 1,
        "few days": 1,
        "some days": 1,
        "a couple of days": 1,
        "a couple days": 1,
        "varios dias": 1,
        "algunos dias": 1,
        "unos dias": 1,
        "unos cuantos dias": 1,
        "pocos dias": 1,
        "a veces": 1,
        # 2
        "more than half the days": 2,
        "more than half of the days": 2,
        "more than half": 2,
        "over half the days": 2,
        "most days": 2,
        "most of the days": 2,
        "most of the time": 2,
        "mas de la mitad de los dias": 2,
        "mas de la mitad": 2,
        "la mayoria de los dias": 2,
        "mayoria de los dias": 2,
        "la mayor parte del tiempo": 2,
        # 3
        "nearly every day": 3,
        "nearly everyday": 3,
        "almost every day": 3,
        "almost everyday": 3,
        "every day": 3,
        "every single day": 3,
        "all the time": 3,
        "casi todos los dias": 3,
        "todos los dias": 3,
        "todo el tiempo": 3,
        "cada dia": 3,
        "a diario": 3,
    }
)
_SINGLE_WORDS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "never": 0,
        "none": 0,
        "nunca": 0,
        "nada": 0,
        "ninguno": 0,
        "ninguna": 0,
        "sometimes": 1,
        "everyday": 3,
        "daily": 3,
        "always": 3,
        "siempre": 3,
        "diario": 3,
        "diariamente": 3,
    }
)
# Words that may stand around a single-word answer without changing it.
_FILLER_WORDS: Final = (
    "i i'd id would say guess think probably prob maybe um umm hmm hm uh well honestly tbh "
    "lol ok okay thanks thank you thx ty so yo creo diria pues mmm gracias"
)
_FILLERS: Final = frozenset(_FILLER_WORDS.split())
_NEGATORS: Final = frozenset({"not", "no", "never", "hardly", "almost", "nunca", "casi"})
_WORD_RE: Final = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# A clear 0 to item 9: these phrases and politeness, nothing else.
_ZERO: Final = (
    "not at all",
    "none at all",
    "no days",
    "zero days",
    "para nada",
    "ningun dia",
    "en absoluto",
    "0",
    "zero",
    "cero",
    "no",
    "nope",
    "nah",
    "never",
    "none",
    "nunca",
    "nada",
    "ninguno",
    "ninguna",
)
_POLITE: Final = ("thank you", "thanks", "thx", "ty", "ok", "okay", "muchas gracias", "gracias")


def words(text: str) -> list[str]:
    """The reply as accent-folded, lowercased words (digits kept, punctuation and emoji gone)."""
    return _WORD_RE.findall(strip_accents(normalize(text)))


def _find(tokens: list[str], phrase: tuple[str, ...], taken: list[bool]) -> int:
    n = len(phrase)
    for i in range(len(tokens) - n + 1):
        if tuple(tokens[i : i + n]) == phrase and not any(taken[i : i + n]):
            return i
    return -1


def read_frequency(text: str) -> tuple[list[int], bool]:
    """The answer values written in words in `text`, in text order without repeats, and whether
    one of them is negated ("not every day"), which makes the reply ambiguous."""
    tokens = words(text)
    taken = [False] * len(tokens)
    hits: list[tuple[int, int]] = []
    negated = False
    for phrase, value in sorted(_PHRASES.items(), key=lambda pv: -len(pv[0].split())):
        parts = tuple(phrase.split())
        while (at := _find(tokens, parts, taken)) >= 0:
            for i in range(at, at + len(parts)):
                taken[i] = True
            # "casi todos los dias" and "almost every day" are phrases of their own (taken
            # first, being longer); a negator left in front of another phrase negates it
            # ("not every day"), except in front of a 0, which it only repeats ("no, not at all").
            if value and at > 0 and tokens[at - 1] in _NEGATORS and not taken[at - 1]:
                negated = True
            hits.append((at, value))
    rest = [t for i, t in enumerate(tokens) if not taken[i] and t not in _FILLERS]
    if not hits and len(rest) == 1 and rest[0] in _SINGLE_WORDS:
        hits.append((0, _SINGLE_WORDS[rest[0]]))
    values: list[int] = []
    for _, value in sorted(hits):
        if value not in values:
            values.append(value)
    return values, negated


def _consume(tokens: list[str], phrases: tuple[tuple[str, ...], ...]) -> tuple[list[str], int]:
    """Remove every occurrence of `phrases` (longest first); returns what is left and how many
    were removed."""
    removed = 0
    for phrase in sorted(phrases, key=len, reverse=True):
        n, i, kept = len(phrase), 0, []
        while i < len(tokens):
            if tuple(tokens[i : i + n]) == phrase:
                removed += 1
                i += n
            else:
                kept.append(tokens[i])
                i += 1
        tokens = kept
    return tokens, removed


def is_clear_zero(text: str) -> bool:
    """True when the reply says 0 and nothing else: see the module's note on item 9."""
    tokens = words(text)
    tokens, zeros = _consume(tokens, tuple(tuple(p.split()) for p in _ZERO))
    tokens, _ = _consume(tokens, tuple(tuple(p.split()) for p in _POLITE))
    return zeros > 0 and not tokens
