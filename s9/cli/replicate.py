"""`s9 models` (what each model takes and costs) and `s9 spend` (what was actually paid): read-only, no API call."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from .app import cli


def _settings():  # noqa: ANN202 - s9.params.Settings
    from ..params import PARAMS_FILE, load_settings

    return load_settings(Path(PARAMS_FILE) if Path(PARAMS_FILE).is_file() else None)


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models_cmd(as_json: bool) -> None:
    """List the video models: durations, aspect ratios, resolutions, audio, end frame, price and schema date.

    Prices come from params.yaml (budget.price_per_second_usd) when it sets them; schemas from the live schema
    a replicate run cached under .s9/ (refreshed daily), else the snapshot shipped with s9."""
    from ..catalog import catalog
    from ..state import STATE_DIR, project_root

    rows = catalog(_settings(), project_root() / STATE_DIR / "schemas")
    if as_json:
        click.echo(json.dumps([row.as_dict() for row in rows], indent=2))
        return
    click.echo(f"{'model':<24} {'durations':<10} {'aspect ratios':<19} {'resolutions':<18} {'audio':<5} "
               f"{'end frame':<16} {'$/s':>5}  schema")
    for row in rows:
        aspects = ", ".join(row.aspects) if row.aspects else "first frame's"
        click.echo(f"{row.id:<24} {','.join(map(str, row.durations)):<10} {aspects:<19} "
                   f"{', '.join(row.resolutions):<18} {'yes' if row.audio else 'no':<5} {row.end_frame or '-':<16} "
                   f"{row.price_per_second:>5.2f}  {row.schema_date} ({row.schema_origin})")
    click.echo(f"Prices: USD per output second, list prices of {rows[0].price_date} unless params.yaml sets them.")
    for row in rows:
        if row.note:
            click.secho(f"⚠ {row.note}", fg="yellow", err=True)


def _day(_ctx: click.Context, _param: click.Parameter, value: str | None):  # noqa: ANN202 - date | None
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-12-01") from None


@cli.command("spend")
@click.option("--since", callback=_day, metavar="YYYY-MM-DD", help="Only predictions completed on or after this "
              "(UTC) day.", show_default="every day")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def spend_cmd(since, as_json: bool) -> None:  # noqa: ANN001 - a date from the callback
    """What the replicate backend actually paid, from the project's prediction journal: per model, concept and
    day (seconds of output x the model's price per second; `predict_time` as the API reported it)."""
    from ..spend import spend

    result = spend(since=since)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        when = f" since {since.isoformat()}" if since else ""
        total = result.total
        click.echo(f"Spent ${total.cost_usd:.2f} on {total.predictions} prediction(s), "
                   f"{total.output_seconds:g} s of video{when}")
        for title, groups in (("model", result.by_model), ("concept", result.by_concept), ("day", result.by_day)):
            if groups:
                click.echo(f"By {title}:")
                for key, value in sorted(groups.items()):
                    click.echo(f"  {key:<40} {value.predictions:>4}  {value.output_seconds:>7g} s  "
                               f"${value.cost_usd:.2f}")
    for path in result.unreadable:
        click.secho(f"⚠ {path}: unreadable journal entry, not counted", fg="yellow", err=True)
