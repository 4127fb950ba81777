"""`checkin import appointments|patients FILE.csv [--dry-run]` and `checkin import fhir FILE.json`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Import patients and appointments (CSV, FHIR).", no_args_is_help=True)
