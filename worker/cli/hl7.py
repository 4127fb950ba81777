"""`checkin hl7 listen`: the MLLP listener for HL7 v2 SIU scheduling feeds."""

from __future__ import annotations

import typer

app = typer.Typer(help="HL7 v2 scheduling feeds (SIU over MLLP).", no_args_is_help=True)


@app.command("listen")
def listen_cmd(
    host: str | None = typer.Option(None, "--host", help="Default: CHECKIN_HL7_HOST."),
    port: int | None = typer.Option(None, "--port", help="Default: CHECKIN_HL7_PORT."),
) -> None:
    """Accept SIU^S12/S13/S14/S15/S17/S26 over MLLP and answer each with an ACK
    (AA applied, AE content refused, AR not HL7). Runs until Ctrl-C."""
    from worker.cli.common import fail, settings
    from worker.domain.hl7_mapping import MappingError, load_mapping
    from worker.hl7_listener import listen
    from worker.logging_setup import configure_logging

    s = settings()
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["hl7_host"] = host
    if port is not None:
        if not 1 <= port <= 65535:
            fail("--port must be 1-65535")
        overrides["hl7_port"] = port
    s = s.model_copy(update=overrides)
    if s.hl7_port is None:
        fail("CHECKIN_HL7_PORT is not set (or pass --port)")
    if s.clinic_tz is None:
        fail("CHECKIN_CLINIC_TZ is required for the HL7 feed", 2)
    try:
        load_mapping(s.hl7_mapping)
    except MappingError as exc:
        fail(str(exc), 2)
    configure_logging(s)
    listen(s)
