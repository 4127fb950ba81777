"""The HL7 feed's mapping (appointment types, assigning authorities, phones, languages).

Shipped defaults in worker/hl7_mapping.yaml; a clinic's file (CHECKIN_HL7_MAPPING) replaces
them key by key, and its `kinds`, `languages` and `assigning_authorities` tables are merged over
the shipped ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from worker.domain.names import APPOINTMENT_KINDS, LANGUAGES

SHIPPED = Path(__file__).resolve().parent.parent / "hl7_mapping.yaml"
_TABLES = ("kinds", "languages", "assigning_authorities")


class MappingError(ValueError):
    """The mapping file is unreadable or names something that does not exist."""


@dataclass(frozen=True)
class Hl7Mapping:
    kinds: dict[str, str]
    default_kind: str | None
    assigning_authorities: dict[str, str]
    mrn_type_codes: tuple[str, ...]
    mobile_equipment_types: tuple[str, ...]
    mobile_use_codes: tuple[str, ...]
    languages: dict[str, str]

    def kind_for(self, *codes: str) -> str | None:
        for code in codes:
            found = self.kinds.get(code.strip().upper())
            if found is not None:
                return found
        return self.default_kind

    def mrn_system(self, authority: str) -> str:
        return self.assigning_authorities.get(authority) or f"urn:hl7v2:authority:{authority}"

    def language_for(self, *codes: str) -> str:
        for code in codes:
            found = self.languages.get(code.strip().lower())
            if found is not None:
                return found
        return "en"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"cannot read the HL7 mapping {path}: {exc}") from None
    if not isinstance(data, dict):
        raise MappingError(f"the HL7 mapping {path} must be a YAML mapping")
    return data


def _strs(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise MappingError(f"HL7 mapping: {key} must be a list")
    return tuple(str(v).strip().upper() for v in value)


@lru_cache(maxsize=8)
def load_mapping(override: str | None = None) -> Hl7Mapping:
    data = _read(SHIPPED)
    if override:
        extra = _read(Path(override))
        for key, value in extra.items():
            if key in _TABLES and isinstance(value, dict):
                data[key] = {**(data.get(key) or {}), **value}
            else:
                data[key] = value
    tables: dict[str, dict[str, str]] = {}
    for key in _TABLES:
        table = data.get(key) or {}
        if not isinstance(table, dict):
            raise MappingError(f"HL7 mapping: {key} must be a mapping")
        tables[key] = {str(k).strip(): str(v).strip() for k, v in table.items()}
    kinds = {k.upper(): v for k, v in tables["kinds"].items()}
    default_kind = data.get("default_kind")
    for kind in [*kinds.values(), *([default_kind] if default_kind else [])]:
        if kind not in APPOINTMENT_KINDS:
            raise MappingError(
                f"HL7 mapping: {kind!r} is not a kind ({', '.join(APPOINTMENT_KINDS)})"
            )
    languages = {k.lower(): v for k, v in tables["languages"].items()}
    for lang in languages.values():
        if lang not in LANGUAGES:
            raise MappingError(f"HL7 mapping: language {lang!r} is not one of en, es")
    return Hl7Mapping(
        kinds=kinds,
        default_kind=str(default_kind) if default_kind else None,
        assigning_authorities=tables["assigning_authorities"],
        mrn_type_codes=_strs(data, "mrn_type_codes"),
        mobile_equipment_types=_strs(data, "mobile_equipment_types"),
        mobile_use_codes=_strs(data, "mobile_use_codes"),
        languages=languages,
    )
