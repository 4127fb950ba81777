"""SIU parsing and the mapping file, without sockets or a database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import hl7
import pytest

from tests.integrations.siu import siu
from worker.domain import siu as parser
from worker.domain.hl7_mapping import MappingError, load_mapping


def _read(text: str, tz: str = "America/New_York", mapping: str | None = None) -> parser.SiuEvent:
    message, header = parser.parse(text)
    return parser.read_siu(message, header, load_mapping(mapping), tz)


def test_times_with_and_without_offsets() -> None:
    assert parser.parse_dtm("202612101400-0500", "UTC") == datetime(2026, 12, 10, 19, tzinfo=UTC)
    assert parser.parse_dtm("20261210140000+0130", "UTC") == datetime(
        2026, 12, 10, 12, 30, tzinfo=UTC
    )
    # No offset: the clinic's zone; the spring-forward gap moves to the first valid minute.
    assert parser.parse_dtm("202603080230", "America/New_York") == datetime(
        2026, 3, 8, 7, 0, tzinfo=UTC
    )
    for bad in ("20261210", "2026-12-10T14:00", "202613101400", "202612101400+9900", ""):
        with pytest.raises(parser.Refusal) as info:
            parser.parse_dtm(bad, "UTC")
        assert info.value.reason == "bad_time" and info.value.code == "AE"


def test_fields_escapes_and_mapping() -> None:
    event = _read(siu("S12", "U1", name="O\\S\\Brien^Mary Ann", location="2\\T\\3^^^North"))
    assert event.name == "Mary Ann O^Brien"
    assert event.location == "2&3 North"
    assert (event.mrn_system, event.mrn) == ("urn:hl7v2:authority:HOSP", "MRN1001")
    assert (event.phone, event.email, event.language) == ("+12125550101", "alex@example.org", "es")
    assert event.kind == "infusion"
    assert _read(siu("S12", "U2", kind="PT^Physical therapy")).kind == "physical_therapy"


def test_a_clinic_mapping_file_merges_over_the_shipped_one(tmp_path: Path) -> None:
    own = tmp_path / "mapping.yaml"
    own.write_text(
        "kinds:\n  YOGA: therapy\nassigning_authorities:\n  HOSP: urn:oid:1.2.3\n"
        "default_kind: consult\n"
    )
    event = _read(siu("S12", "U3", kind="YOGA"), mapping=str(own))
    assert event.kind == "therapy" and event.mrn_system == "urn:oid:1.2.3"
    assert _read(siu("S12", "U4", kind="ZZZ"), mapping=str(own)).kind == "consult"
    assert _read(siu("S12", "U5", kind="INF"), mapping=str(own)).kind == "infusion"
    bad = tmp_path / "bad.yaml"
    bad.write_text("kinds:\n  X: massage\n")
    with pytest.raises(MappingError, match="massage"):
        load_mapping(str(bad))


def test_not_hl7_and_the_ack() -> None:
    for garbage in ("", "hello", "PID|1||x", "MSH|^~\\&|A|B|C|D|2026||SIU^S12||P|2.5"):
        with pytest.raises(parser.Refusal) as info:
            parser.parse(garbage)
        assert info.value.code == "AR"
    _message, header = parser.parse(siu("S12", "U6"))
    ack = parser.ack(
        "AE",
        header,
        now=datetime(2026, 1, 1, tzinfo=UTC),
        ack_id="A1",
        reason="bad_time",
        text="unparseable time 'x|y'",
    )
    parsed = hl7.parse(ack)
    assert str(parsed.segment("MSA")[1]) == "AE" and str(parsed.segment("MSA")[2]) == "U6"
    assert str(parsed.segment("MSH")[5]) == "PMS"  # back to the sender
    assert str(parsed.segment("ERR")[3]).startswith("102")
    assert "x\\F\\y" in ack  # the reason's | is escaped, the ACK stays well-formed
