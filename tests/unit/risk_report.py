"""Recall per category and the false-alarm rates of `assess_risk` on the project's corpus.

    .venv/bin/python -m tests.unit.risk_report          # the table
    .venv/bin/python -m tests.unit.risk_report --misses # and every text that missed

"Urgent" is the crisis tier; "high or more" is either tier. test_risk.py asserts the thresholds.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass

from tests.unit.risk_corpus import CORPUS
from worker.domain.risk import assess_risk

MUST_BE_URGENT = ("explicit", "typos_leet", "means_plan", "spanish")


@dataclass(frozen=True)
class Figures:
    category: str
    texts: int
    urgent: int  # crisis tier
    high: int  # either tier
    misses: tuple[str, ...]  # texts that did not get what the category expects

    @property
    def urgent_rate(self) -> float:
        return self.urgent / self.texts

    @property
    def high_rate(self) -> float:
        return self.high / self.texts


def figures(category: str, texts: Iterable[str]) -> Figures:
    texts = tuple(texts)
    tiers = [(text, m.tier if (m := assess_risk(text)) else None) for text in texts]
    urgent = sum(tier == "crisis" for _, tier in tiers)
    high = sum(tier is not None for _, tier in tiers)
    if category in MUST_BE_URGENT:
        misses = tuple(t for t, tier in tiers if tier != "crisis")
    elif category == "indirect":
        misses = tuple(t for t, tier in tiers if tier is None)
    elif category == "lookalike":
        misses = tuple(t for t, tier in tiers if tier == "crisis")
    else:
        misses = tuple(t for t, tier in tiers if tier is not None)
    return Figures(category, len(texts), urgent, high, misses)


def report() -> list[Figures]:
    return [figures(category, texts) for category, texts in CORPUS.items()]


def main(argv: list[str]) -> int:
    rows = report()
    print(f"{'category':<12} {'texts':>5} {'urgent':>8} {'high+':>8}  expected")
    expected = {
        "indirect": "high or more",
        "lookalike": "not urgent (false urgent <= 10 %)",
        "ordinary": "no match (0 %)",
    }
    for row in rows:
        print(
            f"{row.category:<12} {row.texts:>5} {row.urgent_rate:>7.1%} {row.high_rate:>7.1%}  "
            f"{expected.get(row.category, 'urgent (100 %)')}"
        )
    print(f"{'total':<12} {sum(r.texts for r in rows):>5}")
    if "--misses" in argv:
        for row in rows:
            for text in row.misses:
                print(f"miss [{row.category}] {text!r}: {assess_risk(text)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
