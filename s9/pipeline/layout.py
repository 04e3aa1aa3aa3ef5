"""Where everything of the DVC pipeline lives: one small pipeline per concept, so branches never collide.

    data/s7_scene_prompts/{batch}/{concept}/{concept}_scene_prompts.json   step 7, copied by `s9 add`
    data/s8_first_frames/{batch}/{concept}/{concept}_p{N}_first_frame.jpg  step 8, copied by `s9 add`
    pipelines/{batch}/{concept}/dvc.yaml      generated: stage `inputs`, then one stage `p{N}` per scene
    pipelines/{batch}/{concept}/dvc.lock      written by `dvc repro` / `s9 repro`
    pipelines/{batch}/{concept}/inputs.json   each scene's resolved model input (the `inputs` stage's out)
    pipelines/{batch}/{concept}/metrics.json  clips, seconds, cost, failures (DVC metrics)
    dvc.yaml                                  `stages: {}`: plain `dvc repro` then reproduces every pipeline

Two branches that each add a concept touch disjoint files, so they merge without conflicts. Every path here
is relative to the repository root; the generated stages set `wdir` to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..job import FIRST_FRAME_PATTERN
from ..scenes import PROMPTS_SUFFIX

DVC_FILE = "dvc.yaml"
LOCK_FILE = "dvc.lock"
PROMPTS_ROOT = Path("data/s7_scene_prompts")
FRAMES_ROOT = Path("data/s8_first_frames")
PIPELINES_ROOT = Path("pipelines")
INPUTS_FILE = "inputs.json"
METRICS_FILE = "metrics.json"
INPUTS_STAGE = "inputs"


def scene_stage(number: int) -> str:
    """A scene's stage name inside its concept's dvc.yaml."""
    return f"p{number}"


@dataclass(frozen=True, order=True, slots=True)
class ConceptRef:
    """A registered concept: its batch and name; every path of its pipeline follows from these."""

    batch: str
    name: str

    @property
    def prompts(self) -> Path:
        return PROMPTS_ROOT / self.batch / self.name / f"{self.name}{PROMPTS_SUFFIX}"

    @property
    def frames_dir(self) -> Path:
        return FRAMES_ROOT / self.batch / self.name

    def frame(self, number: int) -> Path:
        return self.frames_dir / FIRST_FRAME_PATTERN.format(concept=self.name, n=number)

    @property
    def pipeline_dir(self) -> Path:
        return PIPELINES_ROOT / self.batch / self.name

    @property
    def dvc_file(self) -> Path:
        return self.pipeline_dir / DVC_FILE

    @property
    def lock_file(self) -> Path:
        return self.pipeline_dir / LOCK_FILE

    @property
    def inputs_file(self) -> Path:
        return self.pipeline_dir / INPUTS_FILE

    @property
    def metrics_file(self) -> Path:
        return self.pipeline_dir / METRICS_FILE

    def address(self, stage: str) -> str:
        """The stage as DVC names it: `pipelines/b1/tiny/dvc.yaml:p1`."""
        return f"{self.dvc_file.as_posix()}:{stage}"

    @classmethod
    def from_pipeline_dir(cls, path: str | Path) -> ConceptRef:
        """`pipelines/{batch}/{concept}` (as the stage commands pass it) back to the concept."""
        parts = Path(path).as_posix().strip("/").split("/")
        if len(parts) != 3 or parts[0] != PIPELINES_ROOT.as_posix():
            raise InputError(f"{path}: not a concept pipeline folder (expected {PIPELINES_ROOT}/<batch>/<concept>)")
        return cls(parts[1], parts[2])


def find_root(start: Path | None = None) -> Path:
    """The DVC repo containing `start` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            return folder
    raise InputError(f"{here}: not inside a DVC repository (run `git init && dvc init` first)")
