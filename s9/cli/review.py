"""`s9 report`: the review page of the registered concepts' clips (library: `s9.report`, `s9.report_page`)."""

from __future__ import annotations

from pathlib import Path

import click

from .app import cli


@cli.command("report")
@click.argument("targets", nargs=-1)
@click.option("--open", "open_page", is_flag=True, help="Open the (first) page in the default web browser.")
def report_cmd(targets: tuple[str, ...], open_page: bool) -> None:
    """Write a static review page per batch and per concept under the outputs folder ({outputs}/{batch}/_report/):
    each scene's first frame, its clip, model, duration, aspect, cost (estimated and paid), status (fresh,
    stale with the reason, failed with the error) and exact prompt, with a contact sheet of first and last
    frames. Links are relative: it works from any checkout with the clips. TARGETS: concepts or scenes, as for
    `s9 status`; none means every concept."""
    from ..pipeline import find_root
    from ..report_page import write_report

    result = write_report(find_root(), list(targets) or None)
    cwd = Path.cwd()
    for path in [*result.pages, *result.sheets]:
        shown = path.relative_to(cwd) if path.is_relative_to(cwd) else path
        click.echo(f"Wrote {shown}")
    click.echo(f"Review page of {result.scenes} scene(s): {result.pages[0] if result.pages else 'nothing to show'}")
    if open_page and result.pages:
        import webbrowser

        if not webbrowser.open(result.pages[0].as_uri()):
            click.secho(f"⚠ no web browser found: open {result.pages[0].as_uri()} yourself", fg="yellow", err=True)
