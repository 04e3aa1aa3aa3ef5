"""Resolve: each scene's exact model input, written to the concept's `inputs.json` by its `inputs` stage.

The entry of scene N is what shapes its clip and nothing else: the model, the backend (and the offline
renderer's identity), and the input the model receives with each image replaced by a placeholder (the image
bytes are file dependencies of the scene stage). So a params change reaches exactly the scenes whose input it
changes (a new default duration only reaches scenes without their own), Sora stages never depend on
`resolution`, and `dvc params diff` names the scene and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..backends import backend_identity
from ..errors import InputError
from ..job import IMAGE_PLACEHOLDER, NEXT_FRAME_PLACEHOLDER, Job, build_job, scene_input_problem, shaping_input
from ..params import Settings
from ..scenes import load_concept
from ..yamlio import shown
from .declare import ConceptDecl, SceneDecl, declare, project_settings
from .layout import ConceptRef

SceneInput = dict[str, Any]


def scene_inputs(decl: ConceptDecl, settings: Settings) -> dict[str, SceneInput]:
    """`{stage: entry}` for every scene of a concept, in scene order."""
    identity = backend_identity(settings.backend)
    entries: dict[str, SceneInput] = {}
    for scene_decl in decl.scenes:
        model, api_input = shaping_input(decl.concept, decl.concept.scene(scene_decl.number), settings)
        entries[scene_decl.stage] = entry(model.id, settings.backend, identity, api_input)
    return entries


def entry(model: str, backend: str, identity: dict[str, str], api_input: dict[str, Any]) -> SceneInput:
    """A scene's inputs.json entry: every image placeholder is left out (the bytes are file dependencies)."""
    images = (IMAGE_PLACEHOLDER, NEXT_FRAME_PLACEHOLDER)
    return {"model": model, "backend": backend, **identity,
            "input": {key: value for key, value in api_input.items() if value not in images}}


def job_for(decl: ConceptDecl, scene: SceneDecl, settings: Settings) -> Job:
    """The job a scene stage runs: its declared clip, and the images its stage depends on (paths relative to
    the repository root, so the caller runs in it)."""
    return build_job(decl.concept, scene.number, Path(scene.frame), settings, output=Path(scene.clip),
                     batch=scene.ref.batch, next_frame=Path(scene.images[1]) if len(scene.images) > 1 else None)


def entry_of(job: Job, settings: Settings) -> SceneInput:
    """The inputs.json entry a job corresponds to (what `scene_inputs` writes for it)."""
    return entry(job.model.id, settings.backend, backend_identity(settings.backend),
                 job.api_input(IMAGE_PLACEHOLDER, NEXT_FRAME_PLACEHOLDER))


def images_problem(decl: ConceptDecl, scene: SceneDecl) -> str | None:
    """Why one of the images a scene sends cannot be sent (missing, not a file, too large, unreadable), or None;
    the paths are the repository's, so the caller runs in its root."""
    for image in scene.images:
        problem = scene_input_problem(decl.concept, scene.number, Path(image))
        if problem:
            return problem
    return None


def render_inputs(entries: dict[str, SceneInput]) -> str:
    return json.dumps(entries, indent=2, ensure_ascii=False) + "\n"


def changed_fields(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two entries, as `dvc params diff` shows them."""
    if isinstance(old, dict) and isinstance(new, dict):
        fields: list[str] = []
        for key in dict.fromkeys([*old, *new]):
            fields += changed_fields(old.get(key), new.get(key), f"{prefix}{key}.")
        return fields
    return [] if old == new else [prefix.rstrip(".")]


def pipeline_drift(decl: ConceptDecl, root: Path) -> str | None:
    """Why the concept's dvc.yaml on disk is not what data/ and params.yaml call for, or None."""
    path = root / decl.ref.dvc_file
    if not path.exists():
        return f"{decl.ref.dvc_file} is missing"
    text = path.read_text(encoding="utf-8")
    if text == decl.render():
        return None
    if decl.scenes and decl.scenes[0].clip not in text:
        return (f"{decl.ref.dvc_file} names other clips than video_model {decl.model} writes "
                "(the model or the outputs folder changed)")
    return f"{decl.ref.dvc_file} does not list the scenes and images of {decl.ref.prompts} as they are now"


def concept_decl(root: Path, ref: ConceptRef, settings: Settings) -> ConceptDecl:
    """One registered concept's declaration, reading only its own step-7 file."""
    if not (root / ref.prompts).is_file():
        raise InputError(f"{ref.prompts}: scene prompts file not found (the concept is not registered: `s9 sync`)")
    [decl] = declare(root, settings, [(ref, load_concept(root / ref.prompts))])
    return decl


def run_resolve(root: Path, pipeline_dir: str | Path) -> Path:
    """`s9 resolve`, the `inputs` stage command: write the concept's inputs.json (when it changed).

    It refuses, before any scene stage runs, a pipeline file that no longer matches params.yaml: after a model
    change DVC would otherwise run the scene stages with the old clip names."""
    ref = ConceptRef.from_pipeline_dir(pipeline_dir)
    settings = project_settings(root)
    decl = concept_decl(root, ref, settings)
    drift = pipeline_drift(decl, root)
    if drift:
        raise InputError(f"{drift}: run `s9 sync` and repro again (to compare models as experiments: "
                         "`s9 exp run -S video_settings.video_model=…`)")
    text = render_inputs(scene_inputs(decl, settings))
    path = root / ref.inputs_file
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return path


def read_inputs(root: Path, ref: ConceptRef) -> dict[str, SceneInput]:
    """The concept's inputs.json as it is on disk ({} when there is none)."""
    path = root / ref.inputs_file
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InputError(f"{shown(path)}: cannot read ({exc}); `s9 repro` rewrites it") from None
    if not isinstance(data, dict):
        raise InputError(f"{shown(path)}: expected a JSON object of scene inputs; `s9 repro` rewrites it")
    return data
