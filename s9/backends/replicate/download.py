"""Saving a prediction's clip: whatever form the output takes, streamed to the destination, http(s) only.

A 404/410 means the output is gone (API outputs are deleted after an hour): `Gone`, and the backend pays for a
new prediction. Network errors and 5xx are retried from the same prediction.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx
from replicate.helpers import FileOutput, transform_output

from ...errors import GenerationError
from .client import Gone, Session, Transient, describe, short


class Downloads:
    def __init__(self, session: Session) -> None:
        self.session = session

    def download(self, pid: str, output: Any, dest: Path, on_url: Callable[[str], None] | None = None) -> None:
        """Write the one clip of prediction `pid` to `dest`; `on_url(url)` is told where it came from."""
        s = self.session
        item = self.single_output(pid, output)
        url = item if isinstance(item, str) else item.url if isinstance(item, FileOutput) else None
        if url is not None and urlsplit(url).scheme.lower() not in ("http", "https"):
            raise GenerationError(f"prediction {pid}: refusing to download output {short(url)!r}: not an http(s) URL")
        p = s.policy
        for attempt in range(1, p.download_attempts + 1):
            s.check_canceled()
            try:
                size = self._fetch(item, dest)
            except Transient as exc:
                if attempt == p.download_attempts:
                    raise GenerationError(
                        f"could not download the clip of prediction {pid}: {exc} (after {attempt} attempts)"
                    ) from None
                if s.canceled.wait(min(p.backoff_max, p.backoff_base * attempt) * random.uniform(0.5, 1.0)):
                    s.check_canceled()
                continue
            form = "fileoutput" if isinstance(item, FileOutput) else "url" if isinstance(item, str) else "chunks"
            s.count("downloads")
            s.count(f"downloads_{form}")  # which output form the client gave us
            s.count("bytes", size)
            if url is not None and on_url is not None:
                on_url(url)
            return

    def single_output(self, pid: str, output: Any) -> FileOutput | str | list[bytes]:
        """The one clip in whatever form the output takes: a URL (FileOutput over https, like replicate.run()
        gives, else str), or a list/iterator of URLs or byte chunks."""
        value = transform_output(output, self.session.api())
        if isinstance(value, FileOutput | str):
            return value
        if isinstance(value, bytes | bytearray):
            return [bytes(value)]
        if isinstance(value, Iterable) and not isinstance(value, Mapping):
            items = list(value)
            if items and all(isinstance(i, bytes | bytearray) for i in items):
                return [bytes(i) for i in items]
            urls = [i for i in items if isinstance(i, FileOutput | str)]
            if urls:
                return urls[0]  # a video model returns one clip; a list of one is common
        raise GenerationError(f"prediction {pid} succeeded but its output is not a video URL: {short(repr(output))}")

    def _fetch(self, item: FileOutput | str | list[bytes], dest: Path) -> int:
        """Stream one output to `dest` (truncating it); bytes written. Raises Gone / Transient."""
        s = self.session
        written = 0
        with dest.open("wb") as out:
            try:
                if isinstance(item, list):
                    for chunk in item:
                        written += _write(out, chunk)
                elif isinstance(item, FileOutput):
                    for chunk in item:  # the official client's streaming GET
                        s.check_canceled()
                        written += _write(out, chunk)
                else:
                    with s.plain_http().stream("GET", item) as response:
                        response.raise_for_status()
                        for chunk in response.iter_bytes():
                            s.check_canceled()
                            written += _write(out, chunk)
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if status in (404, 410):
                    raise Gone("expired", f"the output has expired (HTTP {status})") from None
                if status == 429 or status >= 500:
                    raise Transient(f"HTTP {status}") from None
                raise GenerationError(f"downloading the clip failed: HTTP {status}") from None
            except httpx.TransportError as exc:
                raise Transient(describe(exc)) from None
        return written


def _write(out: BinaryIO, chunk: bytes) -> int:
    out.write(chunk)
    return len(chunk)
