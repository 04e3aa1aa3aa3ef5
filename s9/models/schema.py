"""A model's published input schema (the OpenAPI `Input` component): loading the shipped snapshot, and checking
an input against a schema -- required fields, types, enums, ranges, formats -- the way the API would.

Pure: no HTTP. The replicate backend fetches the live schema and hands its `openapi_schema` to `Schema`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError
from .base import MISSING, ModelSpec, Problem

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, dict),
}


@dataclass(frozen=True)
class Schema:
    """One model's input schema, with where it came from: "snapshot" (shipped), "live" or "cached" (fetched)."""

    model: str
    date: str  # the snapshot's date, or the day the live schema was fetched
    origin: str
    openapi: dict[str, Any]

    @property
    def components(self) -> dict[str, Any]:
        return ((self.openapi or {}).get("components") or {}).get("schemas") or {}

    @property
    def input(self) -> dict[str, Any]:
        found = self.components.get("Input")
        if not isinstance(found, dict):
            raise InputError(f"{self.model}: its {self.origin} schema has no Input component; cannot check inputs")
        return found

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        """Every input field, `$ref`/`allOf` resolved (published schemas keep enums in separate components)."""
        raw = self.input.get("properties") or {}
        return {name: self.resolve(prop) for name, prop in raw.items() if isinstance(prop, dict)}

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(self.input.get("required") or ())

    def resolve(self, prop: dict[str, Any], depth: int = 0) -> dict[str, Any]:
        if depth > 8:
            return prop
        out = {k: v for k, v in prop.items() if k not in ("allOf", "$ref")}
        parts = list(prop.get("allOf") or [])
        if "$ref" in prop:
            parts.append({"$ref": prop["$ref"]})
        for part in parts:
            target = part
            ref = part.get("$ref") if isinstance(part, dict) else None
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                target = self.components.get(ref.rsplit("/", 1)[1], {})
            if isinstance(target, dict):
                # The property's own keys (default, description) win over the component's.
                out = {**self.resolve(target, depth + 1), **out}
        return out

    def problems(self, inp: dict[str, Any]) -> list[Problem]:
        """What the API would refuse in `inp`, one `Problem` per field, in the input's order."""
        props = self.properties
        found = [Problem(name, MISSING, "required") for name in self.required if name not in inp]
        for name, value in inp.items():
            prop = props.get(name)
            if prop is None:
                found.append(Problem(name, value, f"no such input (the schema has: {', '.join(props)})"))
                continue
            problem = check_value(name, value, prop)
            if problem is not None:
                found.append(problem)
        return found

    def allowed(self, name: str) -> str:
        """What a field accepts, as a person reads it (for `s9 models` and messages)."""
        prop = self.properties.get(name)
        return describe(prop) if prop is not None else "-"

    def enum(self, name: str) -> list[Any] | None:
        prop = self.properties.get(name)
        return list(prop["enum"]) if prop and isinstance(prop.get("enum"), list) else None


def check_value(name: str, value: Any, prop: dict[str, Any]) -> Problem | None:
    """The problem with one value against one resolved property, or None."""
    if value is None and prop.get("nullable"):
        return None
    for branch in prop.get("anyOf") or prop.get("oneOf") or ():
        if isinstance(branch, dict) and check_value(name, value, branch) is None:
            return None
    kind = prop.get("type")
    if isinstance(kind, str) and kind in _TYPES and not _TYPES[kind](value):
        return Problem(name, value, describe(prop))
    enum = prop.get("enum")
    if isinstance(enum, list) and value not in enum:
        return Problem(name, value, describe(prop))
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = prop.get("minimum"), prop.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            return Problem(name, value, describe(prop))
        if ("exclusiveMinimum" in prop and value <= prop["exclusiveMinimum"]) or (
                "exclusiveMaximum" in prop and value >= prop["exclusiveMaximum"]):
            return Problem(name, value, describe(prop))
    if prop.get("format") == "uri" and isinstance(value, str) and not urlsplit(value).scheme:
        return Problem(name, value, "a URI")
    if isinstance(value, list | tuple) and isinstance(prop.get("maxItems"), int) and len(value) > prop["maxItems"]:
        return Problem(name, value, describe(prop))
    return None


def describe(prop: dict[str, Any]) -> str:
    """'one of 4, 6, 8' / 'an integer from 0 to 4294967295' / 'a URI' / 'a boolean'."""
    if isinstance(prop.get("enum"), list):
        return "one of " + ", ".join(json.dumps(v) for v in prop["enum"])
    kind = prop.get("type") or "value"
    text = {"integer": "an integer", "array": "an array", "object": "an object"}.get(kind, f"a {kind}")
    if prop.get("format") == "uri":
        text = "a URI"
    low, high = _number(prop.get("minimum")), _number(prop.get("maximum"))
    if low is not None and high is not None:
        text += f" from {low} to {high}"
    elif low is not None:
        text += f" >= {low}"
    elif high is not None:
        text += f" <= {high}"
    if isinstance(prop.get("maxItems"), int):
        text += f" of at most {prop['maxItems']} items"
    return text


def _number(value: Any) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def snapshot_schema(spec: ModelSpec) -> Schema:
    """The schema snapshot shipped for `spec` (dated), used offline and by `s9 plan`."""
    data = _read_snapshot(str(spec.snapshot_path))
    version = data.get("latest_version") or {}
    return Schema(spec.id, str((data.get("s9_snapshot") or {}).get("date", "?")), "snapshot",
                  version.get("openapi_schema") or {})


@cache
def _read_snapshot(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: the shipped schema snapshot is unreadable ({exc}); reinstall s9") from None


def cache_path(spec: ModelSpec, cache_dir: Path) -> Path:
    """Where a fetched live schema of `spec` is cached (the replicate backend writes it)."""
    return cache_dir / f"{spec.id.replace('/', '__')}.json"


def read_cached(spec: ModelSpec, cache_dir: Path) -> tuple[float, Schema] | None:
    """(fetched at, schema) of the cached live schema of `spec`, however old; None when there is none."""
    try:
        data = json.loads(cache_path(spec, cache_dir).read_text(encoding="utf-8"))
        return float(data["fetched_at"]), Schema(spec.id, str(data["date"]), "cached", dict(data["openapi_schema"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
