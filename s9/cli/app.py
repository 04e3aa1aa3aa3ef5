"""The `s9` command group: every error becomes one line on stderr and an exit code, never a traceback.

Library errors (`S9Error`) and click's own usage errors alike: `error: <what>: <why>`, exit 2 for bad input
or usage. Click would print a usage block, a hint and the error (4-5 lines) for the latter.
"""

from __future__ import annotations

import os

import click

from .. import __version__
from ..errors import S9Error

#: The longest error line printed; the middle of anything longer is cut (library messages are far shorter).
MAX_LINE = 1000


def one_line(text: str) -> str:
    """`text` as one terminal line: control characters (a newline in a file name) shown escaped, length capped."""
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    if len(text) > MAX_LINE:
        half = MAX_LINE // 2
        text = f"{text[:half]} … {text[-half:]}"
    return text


def _sentence(text: str) -> str:
    """Click's sentence ("File 'x' is a directory.") as a clause after a colon."""
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:]


def _param_name(param: click.Parameter | None, hint: object) -> str | None:
    if isinstance(param, click.Option):
        return max(param.opts, key=len)  # --jobs rather than -j
    if param is not None:
        return param.human_readable_name  # an argument's metavar, e.g. SCENE_NUMBER
    if isinstance(hint, str):
        return hint
    return None


def usage_line(exc: click.ClickException) -> str:
    """`<option>: <why>` (or just `<why>` when no option is to blame) for one of click's errors."""
    if isinstance(exc, click.BadParameter):
        name = _param_name(exc.param, exc.param_hint)
        why = "missing (required)" if isinstance(exc, click.MissingParameter) else _sentence(exc.message)
        return f"{name}: {why}" if name else why
    if isinstance(exc, click.NoSuchOption):
        close = f" (did you mean {' or '.join(exc.possibilities)}?)" if exc.possibilities else ""
        return f"{exc.option_name}: no such option{close}"
    if isinstance(exc, click.BadOptionUsage):  # "Option '--batch' requires an argument."
        return f"{exc.option_name}: {_sentence(exc.message).replace(f'option {exc.option_name!r} ', '')}"
    return _sentence(exc.format_message())


class OneLineUsageError(click.ClickException):
    """A click usage error, shown as `error: <option>: <why>` (exit 2) instead of click's usage block."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.secho(f"error: {one_line(self.message)}", fg="red", err=True)


def _one_line_usage(exc: click.ClickException) -> click.ClickException:
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        return exc  # bare `s9`: the help text is the answer
    return OneLineUsageError(usage_line(exc))


#: `s9 --help` lists commands in these sections, in this order; a command not named here is a user command.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("For tests and CI", ("fake-replicate",)),
    ("Run by `dvc repro` (not typed by hand)", ("resolve", "stage")),
)


class S9Group(click.Group):
    """Every error is one line on stderr and an exit code; never a traceback, never a usage block. `--help`
    keeps the commands people type apart from those DVC's stages run."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listed = {name for _, names in SECTIONS for name in names}
        commands = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        commands = [(name, cmd) for name, cmd in commands if cmd is not None and not cmd.hidden]
        if not commands:
            return
        width = formatter.width - 6 - max(len(name) for name, _ in commands)
        groups = [("Commands", [c for c in commands if c[0] not in listed])]
        groups += [(title, [c for c in commands if c[0] in names]) for title, names in SECTIONS]
        for title, rows in groups:
            if rows:
                with formatter.section(title):
                    formatter.write_dl([(name, cmd.get_short_help_str(width)) for name, cmd in rows])

    def make_context(self, info_name, args, parent=None, **extra):  # type: ignore[no-untyped-def,override]
        # The group's own options and arguments (`s9 --bogus`) are parsed here, outside `invoke`.
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _one_line_usage(exc) from None

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except S9Error as exc:
            click.secho(f"error: {one_line(str(exc))}", fg="red", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.secho("interrupted: in-flight work was canceled and no partial clip was kept", err=True)
            ctx.exit(130)
        except click.UsageError as exc:  # a command's options and arguments, parsed inside the group's invoke
            raise _one_line_usage(exc) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            # A bug, not bad input: still one line, with a way to get the traceback for a report.
            if os.environ.get("S9_DEBUG"):
                raise
            click.secho(one_line(f"error: internal error ({type(exc).__name__}: {exc}); set S9_DEBUG=1 for the "
                                 "traceback"), fg="red", err=True)
            ctx.exit(1)


# show_default: every option with a fixed default says it in --help; those that default to params.yaml's value
# say that instead (`show_default="…"` on the option).
@click.group(cls=S9Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="s9")
def cli() -> None:
    """Turn a concept's scene prompts and first frames into one video clip per scene."""


def main() -> None:
    cli(prog_name="s9")
