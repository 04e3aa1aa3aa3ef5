"""What the fake does and which faults it injects: `FakeConfig`, changed directly, by CLI flags or `/_fake/config`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeConfig:
    """Behaviour and fault injection; change it directly, via CLI flags or ``POST /_fake/config``.

    The ``*_creates``/``*_gets``/``*_uploads``/``*_downloads`` counters are "the next N requests" and
    count down as they fire.
    """

    latency: float = 0.0  # seconds from creation until a prediction may finish
    latency_jitter: float = 0.0  # each prediction takes latency + a uniform 0..jitter seconds more
    # The account's create limit, as the real API enforces it: creates past `create_limit_per_minute` on
    # average (after a burst of `create_burst`) are answered 429 with a Retry-After. 0: no limit.
    create_limit_per_minute: float = 0.0
    create_burst: int = 10
    rate_limit_creates: int = 0  # next N creates -> 429 with Retry-After
    retry_after: float = 1.0  # seconds, sent rounded up as an integer (the client only parses digits)
    server_error_creates: int = 0  # next N creates -> server_error_status
    server_error_status: int = 503
    server_error_gets: int = 0  # next N prediction GETs -> 503 (the client retries these itself)
    create_then_error: int = 0  # next N creates make the prediction, then answer 502 (a gateway error)
    list_page_size: int = 100  # predictions per page of GET /v1/predictions (the real API's is 100)
    list_omits_input: bool = False  # leave `input` out of listed predictions (GET /v1/predictions/<id> keeps it)
    flag_word: str | None = None  # prompts containing it (any case) fail with E005
    fail_uploads: int = 0  # next N file uploads -> 500
    truncate_downloads: int = 0  # next N output downloads send only the first half
    expire_outputs: int = 0  # next N output downloads answer 410, as an output past its retention does
    # "short": Content-Length says half and half is sent -- the HTTP exchange is clean, so only
    #          checking the file (e.g. opening it with PyAV) catches it. This is the default.
    # "abort": Content-Length says full, half is sent, then the connection closes -- httpx raises.
    truncate_mode: str = "short"
    expected_token: str | None = None  # None: any non-empty bearer token is accepted
    auth_outputs: bool = False  # require the token on /v1/outputs too (the real delivery host does not)
    render_workers: int = 2  # clips rendered at once; read when the server starts
    max_wait: float = 60.0  # upper bound for Prefer: wait, like the real API
    # One clip per (size, duration, audio) for every prediction, ignoring prompt and image: for load tests and
    # benchmarks where rendering would swamp the orchestration being measured. Outputs stay valid clips.
    shared_renders: bool = False
    # Seconds after a prediction ends until its data is removed (`data_removed: true`, no input, output or
    # logs; its output URL answers 404), as the real API does after an hour for predictions made by API.
    output_ttl: float = 3600.0
    # Models that are gone: model id -> 404 or 410 on the model endpoint and on create (a 410 says deprecated).
    gone_models: dict[str, int] = field(default_factory=dict)
    # A live schema that differs from the fake's table: model id -> {field: null (gone) | {attribute: value}},
    # e.g. {"google/veo-3.1-fast": {"aspect_ratio": {"choices": ["16:9", "9:16"]}}}. Served and enforced.
    schema_patches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a dict of changes, checking names and types; raises ValueError naming a bad field."""
        known = {f.name: f for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown config field: {name}")
            current = getattr(self, name)
            kind = type(current) if current is not None else None
            if name in ("flag_word", "expected_token"):
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"{name} must be a string or null")
            elif kind is float:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{name} must be a number")
                value = float(value)
            elif kind is int:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{name} must be an integer")
            elif kind is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be a boolean")
            elif kind is str and not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
            elif kind is dict and not isinstance(value, dict):
                raise ValueError(f"{name} must be an object")
            if name == "gone_models" and any(code not in (404, 410) for code in value.values()):
                raise ValueError("gone_models maps a model id to 404 or 410")
            if name == "truncate_mode" and value not in ("short", "abort"):
                raise ValueError("truncate_mode must be 'short' or 'abort'")
        for name, value in changes.items():
            setattr(self, name, float(value) if isinstance(getattr(self, name), float) else value)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["expected_token"] is not None:
            data["expected_token"] = "***"  # a token, even a fake one, is not echoed back
        return data

