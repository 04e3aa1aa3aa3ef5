"""`/_fake/...`: unauthenticated introspection and runtime configuration of the fake, for tests and scripts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .state import ApiError


def control(fake: Any, method: str, path: str, body: bytes, reply: Callable[[int, Any], None]) -> None:
    """Answer one `/_fake` request on `fake` (a FakeReplicate) with `reply(status, json)`; `ApiError` if unknown."""
    if path == "/_fake/config" and method == "GET":
        with fake._lock:
            reply(200, fake.config.to_dict())
    elif path == "/_fake/config" and method == "POST":
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object of config fields")
            with fake._lock:
                fake.config.update(changes)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        with fake._lock:
            reply(200, fake.config.to_dict())
    elif path == "/_fake/requests" and method == "GET":
        reply(200, fake.requests())
    elif path == "/_fake/predictions" and method == "GET":
        reply(200, fake.predictions())
    elif path == "/_fake/stats" and method == "GET":
        reply(200, fake.stats())
    elif path == "/_fake/reset" and method == "POST":
        fake.reset()
        reply(200, {"ok": True})
    else:
        raise ApiError(404, "Not found.")
