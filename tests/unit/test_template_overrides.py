"""A clinic's template overrides (CHECKIN_TEMPLATES_DIR): looked up first, file by file, over the
shipped templates in the top-level templates/ folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import Settings
from worker.rendering import Renderer, TemplateNotFound, shipped_templates_dir
from worker.services.runtime import build_runtime

CONTEXT = {"clinic_name": "Riverside Pain & Wellness", "clinic_phone": None}
REPO = Path(__file__).resolve().parents[2]


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_checkout_reads_the_top_level_templates_folder() -> None:
    assert shipped_templates_dir() == REPO / "templates"
    assert (REPO / "templates" / "sms" / "en" / "ack.txt.j2").is_file()
    assert not (REPO / "worker" / "templates").exists()


def test_an_override_replaces_only_its_own_file(tmp_path: Path) -> None:
    write(tmp_path, "sms/en/ack.txt.j2", "{{ clinic_name }}: thank you, noted.")
    shipped, clinic = Renderer(), Renderer(overrides_dir=tmp_path)
    assert clinic.sms("ack", "en", CONTEXT) == "Riverside Pain & Wellness: thank you, noted."
    assert shipped.sms("ack", "en", CONTEXT) != clinic.sms("ack", "en", CONTEXT)
    # The same name in the other language, and every other template, stay shipped.
    assert clinic.sms("ack", "es", CONTEXT) == shipped.sms("ack", "es", CONTEXT)
    assert clinic.sms("help", "en", CONTEXT) == shipped.sms("help", "en", CONTEXT)
    assert clinic.names("sms") == shipped.names("sms")


def test_an_overridden_layout_applies_to_every_email_that_extends_it(tmp_path: Path) -> None:
    shipped_layout = (shipped_templates_dir() / "email/en/_layout.txt.j2").read_text()
    write(tmp_path, "email/en/_layout.txt.j2", "Clinic footer test\n" + shipped_layout)
    clinic = Renderer(overrides_dir=tmp_path)
    context = {**CONTEXT, "when": "Tue Mar 10, 2:00 PM", "location": None, "kind": "therapy"}
    for name in ("reminder_therapy", "reminder_consult"):
        assert "Clinic footer test" in clinic.email(name, "en", context).text
        assert "Clinic footer test" not in Renderer().email(name, "en", context).text


def test_an_email_part_from_the_clinic_completes_with_the_shipped_parts(tmp_path: Path) -> None:
    write(tmp_path, "email/en/oncall_page.subject.txt.j2", "Please look at the queue")
    clinic = Renderer(overrides_dir=tmp_path)
    email = clinic.email("oncall_page", "en", {**CONTEXT, "link": "https://x.example/f/1"})
    assert email.subject == "Please look at the queue"
    assert "https://x.example/f/1" in email.text
    assert "oncall_page" in clinic.names("email")


def test_a_missing_overrides_folder_stops_the_process(tmp_path: Path) -> None:
    with pytest.raises(TemplateNotFound, match="not a directory"):
        Renderer(overrides_dir=tmp_path / "missing")
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/c.db", templates_dir=str(tmp_path / "missing")
    )
    with pytest.raises(TemplateNotFound):
        build_runtime(settings)


def test_the_runtime_renders_with_checkin_templates_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "tpl", "sms/es/ack.txt.j2", "{{ clinic_name }}: gracias.")
    monkeypatch.setenv("CHECKIN_TEMPLATES_DIR", str(tmp_path / "tpl"))
    settings = Settings(database_url=f"sqlite:///{tmp_path}/c.db")
    rt = build_runtime(settings)
    try:
        assert rt.renderer.sms("ack", "es", CONTEXT) == "Riverside Pain & Wellness: gracias."
        assert rt.renderer.sms("ack", "en", CONTEXT) == Renderer().sms("ack", "en", CONTEXT)
    finally:
        rt.close()
