"""Fresh takes (`--new-take`): a new clip for a scene whose inputs did not change.

An unchanged rerun reuses what was made (the journal resumes the paid prediction; DVC restores the recorded
clip). A take asks for a new one deliberately: the job carries a take number one above the clip now in place
(read off its debug file), the replicate backend then creates a new prediction instead of following the
journaled one (whose billed record the new entry keeps), and the offline renderer mixes the number into its
seed. In the DVC pipeline the scene's inputs entry stays as it is, so the new clip is recorded as the stage's
out: a take is an override of "same inputs, same clip", and `dvc.lock` is what says which take is current.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from .debugfile import TAKE_LABEL
from .job import Job
from .params import Settings

_TAKE = re.compile(rf"^{re.escape(TAKE_LABEL)} (\d+)\b", re.MULTILINE)


def previous_take(job: Job) -> int:
    """The take number of the clip now in place (0: an ordinary run, or nothing there yet)."""
    try:
        text = job.debug_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 0
    found = _TAKE.search(text)
    return int(found.group(1)) if found else 0


def fresh_take(job: Job) -> Job:
    """`job` as a new take: numbered one above the clip in place, so no two takes share a seed."""
    return replace(job, take=previous_take(job) + 1)


def take_cost(jobs: Sequence[Job], settings: Settings) -> float:
    """What the new predictions cost (seconds x the model's price; nothing offline)."""
    if settings.backend == "offline":
        return 0.0
    return sum(job.duration * settings.price_per_second(job.model.id) for job in jobs)


def describe_takes(jobs: Sequence[Job], settings: Settings) -> list[str]:
    """One line per concept, said before anything is created: which scenes, which take, and the cost."""
    by_concept: dict[str, list[Job]] = {}
    for job in jobs:
        by_concept.setdefault(job.concept, []).append(job)
    lines = []
    for concept, mine in by_concept.items():
        ordered = sorted(mine, key=lambda j: j.scene.number)
        scenes = ", ".join(f"scene {j.scene.number} (take {j.take})" for j in ordered)
        where = "offline" if settings.backend == "offline" else f"{settings.backend}, {mine[0].model.id}"
        lines.append(f"[{concept}] fresh take of unchanged inputs: {scenes}: new prediction(s), estimated "
                     f"${take_cost(mine, settings):.2f} ({where})")
    return lines
