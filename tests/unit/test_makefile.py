"""Every `make` target the README names runs its commands, whatever files share its name.

`bench` is also a directory: without `.PHONY`, `make bench` compared the directory with the
virtualenv's stamp and, once the directory was the newer, said "up to date" and ran nothing.
`make -n` prints the commands a target would run without running them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _targets() -> list[str]:
    return re.findall(r"^([a-z][a-z_-]*):", (ROOT / "Makefile").read_text(), flags=re.M)


def test_every_target_is_phony() -> None:
    phony = re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert phony, "the Makefile declares no .PHONY targets"
    assert sorted(_targets()) == sorted(phony[1].split())


@pytest.mark.skipif(shutil.which("make") is None, reason="`make` is not installed")
def test_make_bench_runs_the_benchmarks_even_though_bench_is_a_directory() -> None:
    assert (ROOT / "bench").is_dir()
    # A stamp older than the directory: the case in which `make bench` used to do nothing.
    out = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "-o", ".venv/.installed-bench", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "-m bench.run" in out, out
