"""Message rendering: Jinja2 templates for SMS and email, and patient-facing date formatting.

Layout (under `worker/templates/`): `sms/<lang>/<name>.txt.j2`, and for email the triplet
`email/<lang>/<name>.subject.txt.j2`, `<name>.txt.j2`, `<name>.html.j2`. Files whose name starts
with "_" are shared layouts, not templates of their own. Every template receives `clinic_name`,
`clinic_phone` (str or None) and `language`; undefined variables raise (StrictUndefined).
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

    def __init__(self, templates_dir: Path | None = None) -> None:
        self._dir = templates_dir or Path(__file__).resolve().parent / "templates"
        options: dict[str, Any] = {
            "loader": jinja2.FileSystemLoader(str(self._dir)),
            "undefined": jinja2.StrictUndefined,
            "keep_trailing_newline": False,
            "trim_blocks": True,
            "lstrip_blocks": True,
            # Templates ship with the code: a compiled one is never re-checked against its
            # file (a stat per message on the send path). A changed template needs a restart.
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
            folder = self._dir / kind / language
            if not folder.is_dir():
                continue
            for path in folder.glob("*.txt.j2"):
                name = path.name.split(".", 1)[0]
                if name.startswith("_") or not _NAME.match(name):
                    continue
                if kind == "sms" or all(
                    (folder / f"{name}.{part}.j2").is_file() for part in _EMAIL_PARTS
                ):
                    found.add(name)
        return sorted(found)
