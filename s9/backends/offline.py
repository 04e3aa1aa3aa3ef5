"""The embedded backend: renders a real preview clip from the first frame, no network, no token."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import video
from ..job import ImageURIs, Job, validate_job
from . import PhaseHook, harmless

# What the debug file shows where the Replicate backend shows the uploaded image URL.
OFFLINE_URI = "offline"


class OfflineBackend:
    name = "offline"

    def __init__(self) -> None:
        # Rendering is CPU-bound: with `-j 200` the other workers wait here instead of holding 200 clips' worth
        # of frames and encoders in memory at once.
        self._renders = threading.BoundedSemaphore(max(1, len(os.sched_getaffinity(0))))

    def check(self) -> None:
        return None

    def preflight(self, jobs: Sequence[Job]) -> None:
        """Check every job's input against the model's shipped schema snapshot, so an offline run (and a plan
        made offline) refuses what the real model would."""
        for job in jobs:
            validate_job(job)

    def upload(self, job: Job) -> str:
        return ImageURIs(OFFLINE_URI, OFFLINE_URI if job.next_frame is not None else None)

    def produce(self, job: Job, api_input: dict[str, Any], dest: Path, on_event: PhaseHook | None = None) -> None:
        with self._renders:
            harmless(on_event)("running", None)  # rendering: no prediction, no download
            self._render(job, dest)

    def _render(self, job: Job, dest: Path) -> None:
        video.render_clip(
            dest,
            first_frame=job.first_frame,
            width=job.preview_size[0],
            height=job.preview_size[1],
            duration=job.duration,
            caption=job.scene.audio_dialogue,
            audio=job.makes_audio,
            # same inputs -> byte-identical clip, so DVC's cache means something; a fresh take -> other bytes
            seed=job.fingerprint if not job.take else f"{job.fingerprint}/take-{job.take}",
            last_frame=job.next_frame,  # continuity: the clip settles into the next scene's first frame
        )

    def receipt(self, job: Job) -> dict[str, Any]:
        # Nothing is paid and no model runs: the render time is the machine's, not the clip's.
        return {"backend": self.name, "model": job.model.id, "output_seconds": job.duration, "cost_usd": 0.0,
                "predict_seconds": None}

    def cancel_all(self) -> None:
        return None

    def close(self) -> None:
        return None
