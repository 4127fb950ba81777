"""Accuracy of the reply parser on the corpus: `.venv/bin/python -m tests.unit.reply_report`."""

from __future__ import annotations

from worker.domain.replies import parse_answer

from .reply_corpus import ASK, CORPUS, Expected


def outcome(text: str, items: tuple[str, ...]) -> Expected:
    """What the parser does with `text`: the values stored, or ASK (the clarification)."""
    parsed = parse_answer(text, items, 0, 10)
    if parsed.problem is not None or not parsed.values:
        return ASK
    return parsed.values


def misses() -> list[tuple[str, tuple[str, ...], Expected, Expected]]:
    wrong = []
    for text, items, expected in CORPUS:
        got = outcome(text, items)
        if got != expected:
            wrong.append((text, items, expected, got))
    return wrong


def main() -> None:
    wrong = misses()
    total = len(CORPUS)
    for text, items, expected, got in wrong:
        print(f"MISS {text!r} {items}: expected {expected}, got {got}")
    print(
        f"{total - len(wrong)}/{total} replies read correctly ({100 * (total - len(wrong)) / total:.1f} %)"
    )


if __name__ == "__main__":
    main()
