"""The fake's own small copy of each model's input contract -- never imported from `s9.models`, so the fake is a
second opinion on s9's specs rather than an echo of them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class _Field:
    type: str  # JSON-schema type: "string", "integer", "boolean"
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None
    uri: bool = False


@dataclass(frozen=True)
class _Model:
    fields: dict[str, _Field]
    duration_field: str
    image_field: str
    # (aspect value) -> (width, height); 1080p still renders 720p-sized frames to stay fast.
    sizes: dict[str, tuple[int, int]]
    has_audio: bool  # whether the model can make sound at all (veo: iff generate_audio)


_VEO = _Model(
    fields={
        "prompt": _Field("string", required=True),
        "image": _Field("string", uri=True),
        "duration": _Field("integer", default=8, choices=(4, 6, 8)),
        "resolution": _Field("string", default="720p", choices=("720p", "1080p")),
        "aspect_ratio": _Field("string", default="16:9", choices=("16:9", "9:16", "1:1")),
        "generate_audio": _Field("boolean", default=True),
    },
    duration_field="duration",
    image_field="image",
    sizes={"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)},
    has_audio=True,
)

MODELS: dict[str, _Model] = {
    "openai/sora-2": _Model(
        fields={
            "prompt": _Field("string", required=True),
            "seconds": _Field("integer", default=4, choices=(4, 8, 12)),
            "aspect_ratio": _Field("string", default="landscape", choices=("landscape", "portrait")),
            "input_reference": _Field("string", uri=True),
        },
        duration_field="seconds",
        image_field="input_reference",
        sizes={"landscape": (1280, 720), "portrait": (720, 1280)},
        has_audio=False,
    ),
    "google/veo-3-fast": _VEO,
    "google/veo-3.1-fast": _VEO,
}


def _json_type(value: Any) -> str:
    """The JSON-schema name of a decoded JSON value, as validation messages spell it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate_input(model: str, data: Any) -> list[dict[str, str]]:
    """Problems with a prediction input, shaped like the API's ``invalid_fields`` (empty when valid).

    Messages follow the wording of the real API's JSON-schema validator, and each names its field.
    """
    spec = MODELS[model]
    if not isinstance(data, dict):
        return [{"type": "invalid_type", "field": "input",
                 "description": f"Invalid type. Expected: object, given: {_json_type(data)}"}]
    problems: list[dict[str, str]] = []
    for name in data:
        if name not in spec.fields:
            problems.append({"type": "additional_property_not_allowed", "field": "input",
                             "description": f"Additional property {name} is not allowed"})
    for name, f in spec.fields.items():
        if name not in data:
            if f.required:
                problems.append({"type": "required", "field": "input", "description": f"{name} is required"})
            continue
        value = data[name]
        given = _json_type(value)
        if given != f.type:
            problems.append({"type": "invalid_type", "field": f"input.{name}",
                             "description": f"Invalid type. Expected: {f.type}, given: {given}"})
        elif f.choices is not None and value not in f.choices:
            allowed = ", ".join(json.dumps(c) for c in f.choices)
            problems.append({"type": "enum", "field": f"input.{name}",
                             "description": f"{name} must be one of the following: {allowed}"})
        elif f.uri and not urlsplit(value).scheme:
            problems.append({"type": "format", "field": f"input.{name}",
                             "description": "Does not match format 'uri'"})
    return problems

