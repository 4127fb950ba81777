"""`python -m bench.run --text-only`: the report's tables stay, the inlined parts are re-read.
Results are not committed, so on a fresh checkout this is the only way to bring REPORT.md up to
date with ANALYSIS.md without losing the benchmarks that were not run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report


def test_refresh_text_keeps_the_tables_and_rereads_the_analysis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "HL7_BURST.md").write_text("## HL7 burst\n\nnew burst figures\n")
    (tmp_path / "ANALYSIS.md").write_text("new analysis\n")
    monkeypatch.setattr(report, "HERE", tmp_path)
    monkeypatch.setattr(report, "ANALYSIS", tmp_path / "ANALYSIS.md")
    old = (
        "# Benchmarks\n\n| table | 1 |\n\n<!-- hl7_burst -->\n## HL7 burst\n\nold burst\n"
        "<!-- /hl7_burst -->\n\n## Analysis\n\nold analysis\n"
    )
    new = report.refresh_text(old)
    assert new.startswith("# Benchmarks\n\n| table | 1 |\n")
    assert "new burst figures" in new and "new analysis" in new
    assert "old burst" not in new and "old analysis" not in new
    assert report.refresh_text(new) == new  # idempotent


def test_refresh_text_refuses_what_it_did_not_write() -> None:
    with pytest.raises(ValueError, match="not a report"):
        report.refresh_text("# some other file\n")


def _dispatch(emulator_alone: dict[str, float]) -> dict[str, object]:
    run = {
        "emulator_alone": {"messages": 4000, "per_second": 3000.0, **emulator_alone},
        "system_0ms": {"messages": 10000, "per_second_sustained": 800.0},
    }
    return {"runs": [run, run, run]}


def test_the_dispatch_section_says_what_bounds_the_emulator_alone_when_it_was_measured() -> None:
    text = "\n".join(
        report.section_dispatch(_dispatch({"emulator_core_share": 0.91, "client_core_share": 0.6}))
    )
    assert "it used 0.91 of one core" in text and "the client 0.60" in text
    # Results from before it was measured: no such line, nothing made up.
    assert "of one core" not in "\n".join(report.section_dispatch(_dispatch({})))
