"""`s9 fake-replicate` (mounted by `s9.cli`) and `python -m s9.fake`.

The server is imported only when the command runs, so mounting the command costs a real run nothing.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click


@click.command("fake-replicate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (keep it local).")
@click.option("--port", default=0, show_default=True, type=int, help="Port; 0 picks a free one.")
@click.option("--latency", default=0.0, show_default=True, type=float, help="Seconds until a prediction ends.")
@click.option("--latency-jitter", default=0.0, show_default=True, type=float,
              help="Each prediction takes up to this many seconds more than --latency (uniformly).")
@click.option("--create-limit", "create_limit_per_minute", default=0.0, show_default=True, type=float,
              help="Creates allowed per minute, as the account limit (Replicate: 600); past it, 429 + Retry-After. "
                   "0: no limit.")
@click.option("--create-burst", default=10, show_default=True, type=int, help="Creates allowed at once under "
              "--create-limit.")
@click.option("--flag-word", default=None, help="Prompts containing this word fail with E005.")
@click.option("--expected-token", default=None, help="Only accept this bearer token (default: any).")
@click.option("--rate-limit-creates", default=0, type=int, help="Answer the next N creates with 429.")
@click.option("--retry-after", default=1.0, type=float, show_default=True, help="Retry-After seconds for 429.")
@click.option("--server-error-creates", default=0, type=int, help="Answer the next N creates with 503.")
@click.option("--server-error-gets", default=0, type=int, help="Answer the next N prediction GETs with 503.")
@click.option("--create-then-error", default=0, type=int,
              help="The next N creates make the prediction but answer 502 (a gateway error).")
@click.option("--list-page-size", default=100, type=int, show_default=True,
              help="Predictions per page of GET /v1/predictions.")
@click.option("--fail-uploads", default=0, type=int, help="Answer the next N uploads with 500.")
@click.option("--expire-outputs", default=0, type=int, help="Answer the next N output downloads with 410 Gone.")
@click.option("--truncate-downloads", default=0, type=int, help="Send only half of the next N clips.")
@click.option("--truncate-mode", type=click.Choice(["short", "abort"]), default="short", show_default=True,
              help="short: honest half-length response; abort: full Content-Length, then hang up.")
@click.option("--gone-model", "gone_models", multiple=True, metavar="OWNER/NAME[=404|410]",
              help="A model that is gone: its endpoint and creates answer 404 (or 410, 'deprecated'). Repeatable.")
@click.option("--output-ttl", default=3600.0, type=float, show_default=True,
              help="Seconds after a prediction ends until its data (output included) is removed.")
@click.option("--render-workers", default=2, type=int, show_default=True, help="Clips rendered in parallel.")
@click.option("--shared-renders", is_flag=True,
              help="Serve one clip per size/duration/audio to every prediction (load tests, benchmarks).")
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False), help="Serve https with this cert.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="Private key for --certfile.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), help="Keep files here.")
@click.option("-v", "--verbose", is_flag=True, help="Log each request line to stderr.")
def fake_replicate_command(host: str, port: int, latency: float, latency_jitter: float,
                           create_limit_per_minute: float, create_burst: int, flag_word: str | None,
                           expected_token: str | None, rate_limit_creates: int, retry_after: float,
                           server_error_creates: int, server_error_gets: int, create_then_error: int,
                           list_page_size: int, fail_uploads: int, expire_outputs: int,
                           truncate_downloads: int, truncate_mode: str,
                           gone_models: tuple[str, ...], output_ttl: float, render_workers: int, shared_renders: bool,
                           certfile: str | None, keyfile: str | None, workdir: Path | None,
                           verbose: bool) -> None:
    """Run a local Replicate-compatible server; prints REPLICATE_BASE_URL=<url> first."""
    from .faults import FakeConfig
    from .server import FakeReplicate

    config = FakeConfig(
        latency=latency, latency_jitter=latency_jitter, create_limit_per_minute=create_limit_per_minute,
        create_burst=create_burst, flag_word=flag_word, expected_token=expected_token,
        rate_limit_creates=rate_limit_creates, retry_after=retry_after,
        server_error_creates=server_error_creates, server_error_gets=server_error_gets,
        create_then_error=create_then_error, list_page_size=list_page_size,
        fail_uploads=fail_uploads, expire_outputs=expire_outputs, truncate_downloads=truncate_downloads,
        truncate_mode=truncate_mode, gone_models=_gone(gone_models), output_ttl=output_ttl,
        render_workers=render_workers, shared_renders=shared_renders,
    )
    server = FakeReplicate(host, port, config=config, certfile=certfile, keyfile=keyfile, workdir=workdir,
                           verbose=verbose)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server.start()
    try:
        # Callers (scripts, CI) read this first line to find the server.
        click.echo(f"REPLICATE_BASE_URL={server.base_url}")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)


def _gone(values: tuple[str, ...]) -> dict[str, int]:
    gone: dict[str, int] = {}
    for value in values:
        model, _, status = value.partition("=")
        if "/" not in model or status not in ("", "404", "410"):
            raise click.BadParameter(f"{value!r}: expected OWNER/NAME, OWNER/NAME=404 or OWNER/NAME=410",
                                     param_hint="--gone-model")
        gone[model] = int(status or 404)
    return gone


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``python -m s9.fake``."""
    fake_replicate_command.main(args=argv, prog_name="python -m s9.fake")


if __name__ == "__main__":
    main()
