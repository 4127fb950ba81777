"""`checkin templates check DIR`: vet a clinic's template overrides before deploying them."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Message templates and a clinic's overrides.", no_args_is_help=True)


@app.command("check")
def check_cmd(
    directory: str = typer.Argument(
        ...,
        metavar="DIR",
        help="A folder of overrides laid out like templates/ (what CHECKIN_TEMPLATES_DIR names).",
    ),
) -> None:
    """Render every template the folder changes, in each language, with long sample values, and
    report per template: for an SMS its encoding and segments against its budget (one GSM-7
    segment for check-ins, reminders and replies), and forbidden words (drugs, diagnoses,
    instruments; CANCEL in a reminder). Exit 1 if any fails to render, breaks a rule or is a
    file the product would never read."""
    from worker.template_check import check_overrides

    folder = Path(directory)
    if not folder.is_dir():
        typer.echo(f"error: {folder} is not a directory", err=True)
        raise typer.Exit(2)
    report = check_overrides(folder)
    if not report.results and not report.unused:
        typer.echo(f"{folder}: no template files")
    for r in report.results:
        size = ""
        if r.segments is not None and r.budget is not None:
            size = f"{r.encoding} {r.segments}/{r.budget.segments} seg"
        problems = r.problems
        verdict = "ok" if not problems else "FAIL: " + "; ".join(problems)
        typer.echo(f"{r.kind:<5} {r.language} {r.name:<28} {size:<14} {verdict}")
    for where, why in report.unused:
        typer.echo(f"FAIL: {where}: never read ({why})")
    failed = sum(1 for r in report.results if r.problems) + len(report.unused)
    typer.echo(f"{len(report.results)} rendered, {failed} failed")
    if failed:
        raise typer.Exit(1)
