"""Message rendering: Jinja2 templates for SMS and email, and patient-facing date formatting.

Layout (the repository's top-level `templates/`, shipped in the wheel as `worker/templates/`):
`sms/<lang>/<name>.txt.j2`, and for email the triplet `email/<lang>/<name>.subject.txt.j2`,
`<name>.txt.j2`, `<name>.html.j2`. Files whose name starts with "_" are shared layouts, not
templates of their own. Every template receives `clinic_name`, `clinic_phone` (str or None) and
`language`; undefined variables raise (StrictUndefined).

A clinic's overrides (CHECKIN_TEMPLATES_DIR) use the same layout and are looked up first, file by
file: an override replaces the shipped file of the same path and everything else stays shipped.
`checkin templates check DIR` vets a directory of overrides before it is deployed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import jinja2

from worker.domain.names import LANGUAGES
from worker.domain.sms_text import segments, to_gsm_safe

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_KINDS: Final = ("sms", "email")
_EMAIL_PARTS: Final = ("subject.txt", "txt", "html")

# Hand tables rather than `locale`: setlocale is process-global and not thread-safe, and the
# locales installed differ between machines.
_EN_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_EN_MONTHS: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
_ES_DAYS: Final = ("lun", "mar", "mié", "jue", "vie", "sab", "dom")
_ES_MONTHS: Final = (
    "ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic",
)  # fmt: skip


def shipped_templates_dir() -> Path:
    """The templates that come with the product.

    An installed wheel carries them as `worker/templates/` (setup.py maps the top-level folder
    there); a source checkout or an editable install reads the top-level `templates/` itself.
    """
    package = Path(__file__).resolve().parent
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


class TemplateNotFound(LookupError):
    """No template of that name, kind and language."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def format_when(local: datetime, language: str) -> str:
    """A patient-local date and time as shown in messages.

    en: "Tue Mar 10, 2:00 PM"; es: "mar 10 mar, 14:00". `local` is taken as already in the
    patient's zone (no conversion). Raises ValueError for an unknown language.
    """
    weekday, month = local.weekday(), local.month - 1
    if language == "en":
        hour12 = local.hour % 12 or 12
        meridiem = "AM" if local.hour < 12 else "PM"
        return (
            f"{_EN_DAYS[weekday]} {_EN_MONTHS[month]} {local.day}, "
            f"{hour12}:{local.minute:02d} {meridiem}"
        )
    if language == "es":
        return (
            f"{_ES_DAYS[weekday]} {local.day} {_ES_MONTHS[month]}, {local.hour}:{local.minute:02d}"
        )
    raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")


def _tidy(text: str) -> str:
    # Template indentation and line ends never belong in a message.
    return "\n".join(line.strip() for line in text.strip().splitlines())


def _sms_segments(text: str, language: str = "en") -> int:
    return segments(to_gsm_safe(text) if language == "en" else text)


class Renderer:
    """Renders SMS and email templates. Build one and reuse it: Jinja caches compiled templates."""

    def __init__(
        self, templates_dir: Path | None = None, overrides_dir: Path | None = None
    ) -> None:
        if overrides_dir is not None and not overrides_dir.is_dir():
            # A mistyped CHECKIN_TEMPLATES_DIR must stop the process, not quietly send the
            # shipped wording the clinic meant to replace.
            raise TemplateNotFound(f"templates folder {str(overrides_dir)!r} is not a directory")
        # The clinic's folder first: Jinja takes a file from the first loader that has it, so an
        # override of a layout ("_layout.html.j2") applies to every template that extends it.
        self._dirs = [d for d in (overrides_dir, templates_dir or shipped_templates_dir()) if d]
        options: dict[str, Any] = {
            "loader": jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in self._dirs]),
            "undefined": jinja2.StrictUndefined,
            "keep_trailing_newline": False,
            "trim_blocks": True,
            "lstrip_blocks": True,
            # A compiled template is never re-checked against its file (that was a stat() per
            # message on the send path): shipped and override templates change with a deploy
            # (`checkin templates check` first) and take effect when the processes restart.
            "auto_reload": False,
        }
        # Plain-text bodies (SMS, email text part, subjects) are not HTML: escaping would show
        # "&amp;" to the patient. Only the HTML part is autoescaped.
        self._text = jinja2.Environment(autoescape=False, **options)  # noqa: S701
        # Lets a template keep an optional part (the clinic's name in the crisis reply) only
        # when it costs no extra segment, counted as the SMS will be sent.
        self._text.filters["sms_segments"] = _sms_segments
        self._html = jinja2.Environment(autoescape=True, **options)

    def _render(
        self, env: jinja2.Environment, path: str, context: Mapping[str, Any], language: str
    ) -> str:
        try:
            template = env.get_template(path)
        except jinja2.TemplateNotFound as exc:
            raise TemplateNotFound(path) from exc
        values = dict(context)
        values.setdefault("language", language)
        return template.render(values)

    @staticmethod
    def _check(name: str, language: str) -> None:
        if not _NAME.match(name) or language not in LANGUAGES:
            raise TemplateNotFound(f"{name!r} in language {language!r}")

    def sms(self, name: str, language: str, context: Mapping[str, Any]) -> str:
        """The SMS body of template `name` in `language`, stripped.

        English text is passed through `to_gsm_safe`, so a curly quote in a clinic's location
        does not turn the message into UCS-2; Spanish is sent as written (it needs its accents).
        Raises TemplateNotFound; jinja2.UndefinedError for a missing context variable.
        """
        self._check(name, language)
        body = _tidy(self._render(self._text, f"sms/{language}/{name}.txt.j2", context, language))
        return to_gsm_safe(body) if language == "en" else body

    def email(self, name: str, language: str, context: Mapping[str, Any]) -> RenderedEmail:
        """Subject (one line), plain-text and HTML bodies of email template `name`.

        Raises TemplateNotFound; jinja2.UndefinedError for a missing context variable.
        """
        self._check(name, language)
        base = f"email/{language}/{name}"
        subject = self._render(self._text, f"{base}.subject.txt.j2", context, language)
        text = self._render(self._text, f"{base}.txt.j2", context, language)
        html = self._render(self._html, f"{base}.html.j2", context, language)
        # A subject is one header line: a newline from a context value must not start a new one.
        return RenderedEmail(subject=" ".join(subject.split()), text=_tidy(text), html=html.strip())

    def names(self, kind: str) -> list[str]:
        """Template names of `kind` ("sms" or "email") present in any language, sorted.

        An email name is listed when its subject, text and HTML files all exist.
        """
        if kind not in _KINDS:
            raise ValueError(f"unknown template kind {kind!r}; expected 'sms' or 'email'")
        found: set[str] = set()
        for language in LANGUAGES:
            folders = [d / kind / language for d in self._dirs]
            for path in (
                p for folder in folders if folder.is_dir() for p in folder.glob("*.txt.j2")
            ):
                name = path.name.split(".", 1)[0]
                if name.startswith("_") or not _NAME.match(name):
                    continue
                # An email part may come from the clinic's folder and the rest from the shipped.
                if kind == "sms" or all(
                    any((folder / f"{name}.{part}.j2").is_file() for folder in folders)
                    for part in _EMAIL_PARTS
                ):
                    found.add(name)
        return sorted(found)
