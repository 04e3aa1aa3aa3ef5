"""The `s9` command group: library errors become one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

import os

import click

from .. import __version__
from ..errors import S9Error


class S9Group(click.Group):
    """Library errors become one line on stderr and an exit code; never a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except S9Error as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.secho("interrupted: in-flight work was canceled and no partial clip was kept", err=True)
            ctx.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            # A bug, not bad input: still one line, with a way to get the traceback for a report.
            if os.environ.get("S9_DEBUG"):
                raise
            click.secho(f"error: internal error ({type(exc).__name__}: {exc}); set S9_DEBUG=1 for the traceback",
                        fg="red", err=True)
            ctx.exit(1)


@click.group(cls=S9Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="s9")
def cli() -> None:
    """Turn a concept's scene prompts and first frames into one video clip per scene."""



def main() -> None:
    cli(prog_name="s9")
