"""Uploading images with the client's files API: once per distinct image per run, however many scenes share it."""

from __future__ import annotations

import threading
from pathlib import Path

from ...errors import GenerationError
from .client import Session


class Uploads:
    """Uploaded image URLs by content hash. Thread-safe: scenes sharing an image wait for one upload."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._urls: dict[str, str] = {}  # image sha256 -> uploaded file URL
        self._gates: dict[str, threading.Lock] = {}

    def upload(self, path: Path, sha256: str) -> str:
        """The URL of the uploaded image at `path` (whose content hash is `sha256`), uploading it if needed."""
        s = self.session
        with s.lock:
            if sha256 in self._urls:
                return self._urls[sha256]
            gate = self._gates.setdefault(sha256, threading.Lock())
        with gate:
            with s.lock:
                if sha256 in self._urls:
                    return self._urls[sha256]
            client = s.api()
            s.check_canceled()
            try:
                uploaded = s.with_retries("upload", lambda: client.files.create(path))
            except GenerationError as exc:
                raise GenerationError(f"Could not upload image: {exc}") from None
            except OSError as exc:
                raise GenerationError(f"Could not upload image: {path}: {exc.strerror or exc}") from None
            url = (uploaded.urls or {}).get("get")
            if not url:
                raise GenerationError("Could not upload image: the API returned no URL for it")
            s.count("uploads")
            with s.lock:
                self._urls[sha256] = url
                self._gates.pop(sha256, None)  # whoever still waits on it finds the URL; nobody new needs it
            return url
