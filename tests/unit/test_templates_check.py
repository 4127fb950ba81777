"""`checkin templates check DIR`: a clinic's overrides rendered with sample values and judged by
the rules the shipped templates follow (GSM-7, segment budgets, forbidden words)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from worker.cli import app
from worker.domain.message_rules import LIFELINE, forbidden_words, sms_budget
from worker.rendering import shipped_templates_dir

_runner = CliRunner()
GOOD_REMINDER = (
    "{{ clinic_name }}: Visit {{ when }}{% if location %} at {{ location }}{% endif %}. "
    "Reply C to confirm, R to reschedule."
)


def check(folder: Path) -> tuple[int, str]:
    result = _runner.invoke(app, ["templates", "check", str(folder)], catch_exceptions=False)
    return result.exit_code, result.output


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def line(output: str, kind: str, language: str, name: str) -> str:
    found = [x for x in output.splitlines() if x.split()[:3] == [kind, language, name]]
    assert len(found) == 1, output
    return found[0]


def test_a_good_override_passes_with_its_encoding_and_segments(tmp_path: Path) -> None:
    write(tmp_path, "sms/en/reminder_therapy.txt.j2", GOOD_REMINDER)
    code, out = check(tmp_path)
    assert code == 0, out
    assert line(out, "sms", "en", "reminder_therapy").endswith("GSM-7 1/1 seg  ok")
    assert "1 rendered, 0 failed" in out


def test_the_shipped_templates_pass_as_overrides(tmp_path: Path) -> None:
    shutil.copytree(shipped_templates_dir() / "sms", tmp_path / "sms")
    shutil.copytree(shipped_templates_dir() / "email", tmp_path / "email")
    code, out = check(tmp_path)
    assert code == 0, out
    assert " 0 failed" in out and "FAIL" not in out


@pytest.mark.parametrize(
    ("relative", "text", "problem"),
    [
        # Two segments with the long sample clinic name, location and date.
        (
            "sms/en/reminder_consult.txt.j2",
            GOOD_REMINDER + " " + "Please arrive early. " * 4,
            "2 segments, over the budget of 1",
        ),
        # Spanish is sent as written: an "á" makes it UCS-2.
        (
            "sms/es/ack.txt.j2",
            "{{ clinic_name }}: recibimos su respuesta, gracias. Está bien.",
            "not GSM-7",
        ),
        # English goes through to_gsm_safe, but an emoji has no GSM-7 stand-in.
        ("sms/en/ack.txt.j2", "Thanks \N{SLIGHTLY SMILING FACE}", "not GSM-7"),
        (
            "sms/en/checkin_mood.txt.j2",
            "How is your depression today? 0-10",
            "forbidden words: depression",
        ),
        (
            "sms/en/reminder_infusion.txt.j2",
            "{{ clinic_name }}: infusion {{ when }}. Reply C.",
            "forbidden words: infusion",
        ),
        (
            "sms/en/reminder_therapy.txt.j2",
            "{{ clinic_name }}: {{ when }}. Reply CANCEL to cancel.",
            "forbidden words: cancel",
        ),
        ("email/en/oncall_page.subject.txt.j2", "Ketamine follow-up", "forbidden words: Ketamine"),
        ("sms/en/ack.txt.j2", "{{ clinic_name }}: thanks {{ first_name }}", "UndefinedError"),
        ("sms/en/ack.txt.j2", "{{ clinic_name }: thanks", "TemplateSyntaxError"),
    ],
)
def test_a_bad_override_fails_with_the_reason(
    tmp_path: Path, relative: str, text: str, problem: str
) -> None:
    write(tmp_path, relative, text)
    kind, language, filename = relative.split("/")
    code, out = check(tmp_path)
    assert code == 1, out
    result = line(out, kind, language, filename.split(".")[0])
    assert "FAIL" in result and problem in result, result
    assert "1 failed" in out


def test_a_broken_layout_fails_every_email_that_extends_it(tmp_path: Path) -> None:
    write(tmp_path, "email/es/_layout.html.j2", "{% block body %}{{ nope }}{% endblock %}")
    code, out = check(tmp_path)
    assert code == 1
    failed = [x for x in out.splitlines() if x.startswith("email es") and "FAIL" in x]
    assert len(failed) >= 10, out
    assert not [x for x in out.splitlines() if x.startswith(("email en", "sms"))]


@pytest.mark.parametrize(
    "relative",
    ["sms/en/ack.txt", "sms/fr/ack.txt.j2", "sms/en/acknowledge.txt.j2", "ack.txt.j2"],
)
def test_a_file_the_product_never_reads_fails(tmp_path: Path, relative: str) -> None:
    write(tmp_path, relative, "{{ clinic_name }}: thanks")
    code, out = check(tmp_path)
    assert code == 1
    assert f"FAIL: {relative}: never read" in out


def test_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    code, out = check(tmp_path / "missing")
    assert code == 2 and "not a directory" in out


def test_the_lifeline_name_is_allowed_only_in_the_crisis_and_help_replies() -> None:
    text = f"Call or text 988 ({LIFELINE})."
    assert forbidden_words("crisis_reply", text) == []
    assert forbidden_words("help", text.replace("&", "&amp;")) == []
    assert forbidden_words("ack", text) == ["Suicide"]


def test_budgets_default_to_one_gsm7_segment() -> None:
    assert (sms_budget("ack", "en").segments, sms_budget("ack", "en").gsm7) == (1, True)
    # The HELP, STOP and possible-risk replies have no longer budget any more (issue 11).
    for name in ("help", "stop_confirmation", "possible_risk_reply"):
        for language in ("en", "es"):
            budget = sms_budget(name, language)
            assert (budget.segments, budget.gsm7) == (1, True)
    # Only a questionnaire item sent by SMS (questionnaire_mode=sms) may be longer.
    assert sms_budget("checkin_item", "en").segments == 2
    assert sms_budget("checkin_item", "es").gsm7 is False


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_help_override_over_one_segment_fails(tmp_path: Path, language: str) -> None:
    old_help = (
        "{{ clinic_name }}: Check-ins and appointment reminders. Msg frequency varies. "
        "Msg & data rates may apply. Reply STOP to stop.{% if clinic_phone %} Call "
        "{{ clinic_phone }}.{% endif %} Not for emergencies: call or text 988, or call 911."
    )
    write(tmp_path, f"sms/{language}/help.txt.j2", old_help)
    code, out = check(tmp_path)
    assert code == 1, out
    assert "2 segments, over the budget of 1" in line(out, "sms", language, "help")
