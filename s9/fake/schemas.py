"""The fake's own small copy of each model's input contract -- never imported from `s9.models`, so the fake is a
second opinion on s9's specs rather than an echo of them.

From the same table the fake serves each model's published schema (`GET /v1/models/{owner}/{name}`, enums
behind `allOf`/`$ref` as published schemas write them) and validates creates, so a schema patched through
`FakeConfig.schema_patches` changes both at once, as a live schema change would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class _Field:
    type: str  # JSON-schema type: "string", "integer", "boolean", "array"
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None
    uri: bool = False
    minimum: float | None = None
    maximum: float | None = None


Rule = Callable[[dict[str, Any]], list[tuple[str, str]]]  # full input -> [(field, description)]


@dataclass(frozen=True)
class _Model:
    fields: dict[str, _Field]
    duration_field: str
    image_field: str
    # (aspect value) -> (width, height); None: the clip takes the first image's shape. 1080p still renders
    # 720p-sized frames to stay fast.
    sizes: dict[str, tuple[int, int]] | None
    has_audio: bool  # whether the model can make sound at all (veo: iff generate_audio)
    end_field: str | None = None  # the end-frame input, if any
    rules: tuple[Rule, ...] = field(default_factory=tuple)  # cross-field rules the schema cannot say


_WIDE = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)}
_PROMPT = _Field("string", required=True)
_SEED = _Field("integer", minimum=0, maximum=4294967295)


def _veo(end_frame: bool, default_resolution: str = "720p", references: bool = False) -> _Model:
    fields = {
        "prompt": _PROMPT,
        "image": _Field("string", uri=True),
        "duration": _Field("integer", default=8, choices=(4, 6, 8)),
        "resolution": _Field("string", default=default_resolution, choices=("720p", "1080p")),
        "aspect_ratio": _Field("string", default="16:9", choices=("16:9", "9:16", "1:1")),
        "generate_audio": _Field("boolean", default=True),
        "negative_prompt": _Field("string"),
        "seed": _SEED,
    }
    rules: tuple[Rule, ...] = ()
    if end_frame:
        fields["last_frame"] = _Field("string", uri=True)
    if references:
        fields["reference_images"] = _Field("array")
        rules = (lambda v: [("reference_images", "reference_images cannot be used with image or last_frame")]
                 if v.get("reference_images") and (v.get("image") or v.get("last_frame")) else [],)
    return _Model(fields, "duration", "image", _WIDE, True, "last_frame" if end_frame else None, rules)


def _kling_pro_only(v: dict[str, Any]) -> list[tuple[str, str]]:
    if v.get("end_image") and v.get("mode") != "pro":
        return [("end_image", "end_image is only supported in pro mode")]
    return []


def _hailuo_long_at_768p(v: dict[str, Any]) -> list[tuple[str, str]]:
    if v.get("duration") == 10 and v.get("resolution") != "768p":
        return [("duration", "10 second videos are only available at 768p")]
    return []


MODELS: dict[str, _Model] = {
    "openai/sora-2": _Model(
        fields={
            "prompt": _PROMPT,
            "seconds": _Field("integer", default=4, choices=(4, 8, 12)),
            "aspect_ratio": _Field("string", default="landscape", choices=("landscape", "portrait")),
            "input_reference": _Field("string", uri=True),
        },
        duration_field="seconds",
        image_field="input_reference",
        sizes={"landscape": (1280, 720), "portrait": (720, 1280)},
        has_audio=False,
    ),
    "google/veo-3-fast": _veo(end_frame=False),
    "google/veo-3.1-fast": _veo(end_frame=True),
    "google/veo-3.1": _veo(end_frame=True, default_resolution="1080p", references=True),
    "kwaivgi/kling-v2.1": _Model(
        fields={
            "prompt": _PROMPT,
            "start_image": _Field("string", required=True, uri=True),
            "end_image": _Field("string", uri=True),
            "mode": _Field("string", default="standard", choices=("standard", "pro")),
            "duration": _Field("integer", default=5, choices=(5, 10)),
            "negative_prompt": _Field("string", default=""),
        },
        duration_field="duration", image_field="start_image", sizes=None, has_audio=False, end_field="end_image",
        rules=(_kling_pro_only,),
    ),
    "minimax/hailuo-02": _Model(
        fields={
            "prompt": _PROMPT,
            "first_frame_image": _Field("string", uri=True),
            "last_frame_image": _Field("string", uri=True),
            "duration": _Field("integer", default=6, choices=(6, 10)),
            "resolution": _Field("string", default="1080p", choices=("512p", "768p", "1080p")),
            "prompt_optimizer": _Field("boolean", default=True),
        },
        duration_field="duration", image_field="first_frame_image", sizes=None, has_audio=False,
        end_field="last_frame_image", rules=(_hailuo_long_at_768p,),
    ),
    "wan-video/wan-2.5-i2v": _Model(
        fields={
            "image": _Field("string", required=True, uri=True),
            "prompt": _PROMPT,
            "audio": _Field("string", uri=True),
            "duration": _Field("integer", default=5, choices=(5, 10)),
            "resolution": _Field("string", default="720p", choices=("480p", "720p", "1080p")),
            "negative_prompt": _Field("string", default=""),
            "enable_prompt_expansion": _Field("boolean", default=True),
            "seed": _SEED,
        },
        duration_field="duration", image_field="image", sizes=None, has_audio=False,
    ),
}


def effective(model: str, patches: dict[str, Any] | None = None) -> _Model:
    """The model as currently served: its table entry with `FakeConfig.schema_patches[model]` applied.

    A patch maps a field to null (the field is gone) or to changes of its attributes, e.g.
    ``{"aspect_ratio": {"choices": ["16:9", "9:16"]}}``.
    """
    spec = MODELS[model]
    patch = (patches or {}).get(model) or {}
    if not patch:
        return spec
    fields = dict(spec.fields)
    for name, change in patch.items():
        if change is None:
            fields.pop(name, None)
            continue
        base = fields.get(name, _Field("string"))
        changes = {k: tuple(v) if k == "choices" and v is not None else v for k, v in change.items()}
        fields[name] = replace(base, **changes)
    return replace(spec, fields=fields)


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


def validate_input(model: str, data: Any, patches: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Problems with a prediction input, shaped like the API's ``invalid_fields`` (empty when valid).

    Messages follow the wording of the real API's JSON-schema validator, and each names its field.
    """
    spec = effective(model, patches)
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
        elif f.minimum is not None and value < f.minimum:
            problems.append({"type": "number_gte", "field": f"input.{name}",
                             "description": f"Must be greater than or equal to {f.minimum:g}"})
        elif f.maximum is not None and value > f.maximum:
            problems.append({"type": "number_lte", "field": f"input.{name}",
                             "description": f"Must be less than or equal to {f.maximum:g}"})
        elif f.uri and not urlsplit(value).scheme:
            problems.append({"type": "format", "field": f"input.{name}",
                             "description": "Does not match format 'uri'"})
    if not problems:
        for rule in spec.rules:
            problems += [{"type": "invalid", "field": f"input.{name}", "description": text}
                         for name, text in rule(data)]
    return problems


def model_json(model: str, base: str, created_at: str, patches: dict[str, Any] | None = None) -> dict[str, Any]:
    """`GET /v1/models/{owner}/{name}`: the model with its latest version's OpenAPI schema."""
    spec = effective(model, patches)
    owner, name = model.split("/", 1)
    components: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for order, (key, f) in enumerate(spec.fields.items()):
        prop: dict[str, Any] = {"title": key.replace("_", " ").title(), "x-order": order}
        if f.choices is not None:
            # Published schemas keep an enum in its own component, referenced through allOf.
            components[key] = {"title": key, "description": "An enumeration.", "type": f.type,
                               "enum": list(f.choices)}
            prop["allOf"] = [{"$ref": f"#/components/schemas/{key}"}]
        else:
            prop["type"] = f.type
            if f.uri:
                prop["format"] = "uri"
            if f.type == "array":
                prop["items"] = {"type": "string", "format": "uri"}
        if f.minimum is not None:
            prop["minimum"] = f.minimum
        if f.maximum is not None:
            prop["maximum"] = f.maximum
        if f.default is not None:
            prop["default"] = f.default
        properties[key] = prop
    required = [key for key, f in spec.fields.items() if f.required]
    components["Input"] = {"type": "object", "title": "Input", "required": required, "properties": properties}
    return {
        "url": f"{base}/{model}", "owner": owner, "name": name, "description": f"{model} (fake)",
        "visibility": "public", "github_url": None, "paper_url": None, "license_url": None, "run_count": 0,
        "cover_image_url": None, "default_example": None,
        "latest_version": {
            "id": "hidden", "created_at": created_at, "cog_version": "0.15.0",
            "openapi_schema": {"openapi": "3.0.2", "info": {"title": "Cog", "version": "0.1.0"},
                               "components": {"schemas": components}},
        },
    }
