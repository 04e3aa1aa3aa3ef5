"""Backends turn a resolved `Job` into an MP4. Each one: `check`, `preflight`, `upload`, `produce`, `cancel_all`,
`close`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..errors import InputError
from ..job import Job
from ..params import BACKENDS, Settings

#: `on_event(phase, prediction_id)`: what a backend reports while it produces one job's clip -- "submitted"
#: (a create sent; the id once the API answers), "running", "downloading" (see `s9.runner.PHASES`). For
#: showing progress only: it never changes what is sent, and an error in it is the caller's, never the scene's.
PhaseHook = Callable[[str, "str | None"], None]


def harmless(on_event: PhaseHook | None) -> PhaseHook:
    """`on_event` made harmless for a backend to call: showing progress must never fail (or re-pay for) a scene."""
    def emit(phase: str, prediction_id: str | None = None) -> None:
        if on_event is not None:
            with contextlib.suppress(Exception):  # a display bug is not the scene's failure
                on_event(phase, prediction_id)
    return emit


class Backend(Protocol):
    name: str

    def check(self) -> None:
        """Raise `InputError` before any work when the backend cannot run (e.g. no API token)."""

    def preflight(self, jobs: Sequence[Job]) -> None:
        """Before any upload: raise `InputError` (one line) when the model would refuse a job's input (checked
        against its schema: the live one for replicate, the shipped snapshot offline)."""

    def upload(self, job: Job) -> str:
        """Make the job's images available to the model; return the first frame's URI (an `ImageURIs` carrying
        the end frame's too, when the job has one) that `job.api_input` turns into the input."""

    def produce(self, job: Job, api_input: dict[str, Any], dest: Path, on_event: PhaseHook | None = None) -> None:
        """Write the clip for `api_input` to `dest` (a temp path); raise `GenerationError` on failure.
        `on_event` (optional) hears the job's phases as they happen."""

    def receipt(self, job: Job) -> dict[str, Any]:
        """What making the job's clip took: model, output seconds, USD paid (every prediction made for it),
        the model's own run time when the provider reports it. Kept beside the clip (it travels with it through
        DVC); the same for the same clip on every machine when the clip's bytes are."""

    def cancel_all(self) -> None:
        """Stop everything in flight (Ctrl-C): nothing keeps running or costing money."""

    def close(self) -> None: ...


def backend_identity(name: str) -> dict[str, str]:
    """What besides the model input shapes a backend's clip (recorded per scene by the DVC pipeline)."""
    if name == "offline":  # the clips' bytes depend on the renderer and the encoders under it
        from ..video import renderer_identity

        return {"renderer": renderer_identity()}
    return {}


def get_backend(name: str, settings: Settings) -> Backend:
    if name == "offline":
        from .offline import OfflineBackend

        return OfflineBackend()
    if name == "replicate":
        from .replicate import ReplicateBackend

        return ReplicateBackend(settings)
    raise InputError(f"unknown backend {name!r} (valid: {', '.join(BACKENDS)})")
