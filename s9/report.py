"""The review page's contents (`s9 report`; the HTML is `report_page`): what a person looks at after a run,
one static HTML page per batch and per concept, with a contact sheet of every scene's first and last frames.

For each scene: its first frame, the clip (a `<video>` with the first frame as poster), model, duration, aspect,
cost (estimated as params.yaml stands, and actually paid, from the prediction journal; 0 offline), status
(fresh; stale with the reason; failed with the error) and the exact prompt sent for the clip in place.

Written under the outputs folder, in `{video_outputs_dir}/{batch}/_report/` (a name no concept can have, so the
pipeline's tidying and leftover checks never touch it). Every link is relative: the page works from any
checkout where the clips are (`dvc pull`), with no server and nothing fetched from a network.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .errors import S9Error
from .job import Job, build_job, shaping_input
from .models import MODELS
from .params import Settings
from .spend import actual_cost

REPORT_DIR = "_report"  # inside each batch's outputs folder; concept names start with a letter or digit
THUMB = (256, 144)  # contact-sheet cell: each frame fitted inside, letterboxed
FRESH, STALE, FAILED = "fresh", "stale", "failed"


@dataclass
class SceneReport:
    concept: str
    batch: str
    number: int
    key: str  # tiny_p2
    first_frame: Path  # absolute
    clip: Path  # absolute; may not exist
    debug_file: Path | None
    model: str
    duration: int  # seconds, as snapped for the model
    aspect: str  # as asked (params), and what the model was sent in `aspect_sent`
    aspect_sent: str
    resolution: str
    estimated_usd: float
    actual_usd: float
    status: str  # fresh | stale | failed
    detail: str  # the stale reason or the error; "" when fresh
    prompt: str  # exactly as sent for the clip in place (its debug file), else as it would be sent now
    take: int = 0

    @property
    def has_clip(self) -> bool:
        return self.clip.is_file()

    @property
    def model_label(self) -> str:
        spec = MODELS.get(self.model)
        return spec.label if spec else self.model


@dataclass
class ConceptReport:
    batch: str
    name: str
    scenes: list[SceneReport] = field(default_factory=list)


def _sent(debug_file: Path | None) -> tuple[dict | None, int]:
    """The API input recorded in a scene's debug file (its exact JSON section) and the take, if readable."""
    if debug_file is None:
        return None, 0
    try:
        text = debug_file.read_text(encoding="utf-8")
    except OSError:
        return None, 0
    take = 0
    for line in text.splitlines():
        if line.startswith("Take: "):
            with contextlib.suppress(ValueError):
                take = int(line.split()[1])
    marker = "API INPUT JSON:\n"
    if marker not in text:
        return None, take
    try:
        data = json.loads(text.split(marker, 1)[1])
    except ValueError:
        return None, take
    return (data if isinstance(data, dict) else None), take


def _scene(root: Path, decl, scene_status, settings: Settings) -> SceneReport:  # noqa: ANN001 - pipeline types
    """One scene's row: from its declared paths, the job it makes now, its status and the journal."""
    sd = scene_status.decl
    job: Job | None = None
    with contextlib.chdir(root):
        try:
            job = build_job(decl.concept, sd.number, Path(sd.frame), settings, output=Path(sd.clip),
                            batch=sd.ref.batch, next_frame=Path(sd.images[1]) if len(sd.images) > 1 else None)
        except S9Error:
            job = None  # an unreadable frame: the row still shows what the scene asks for
    scene = decl.concept.scene(sd.number)
    model, shaped = shaping_input(decl.concept, scene, settings)
    debug_file = job.debug_file if job is not None else None
    sent, take = _sent(root / debug_file if debug_file is not None else None)
    prompt = str((sent or {}).get("prompt") or shaped.get("prompt") or scene.combined_prompt)
    duration, _ = model.snap_duration(scene.duration_seconds or settings.duration_seconds)
    price = 0.0 if settings.backend == "offline" else settings.price_per_second(model.id)
    actual = actual_cost([job.fingerprint], root) if job is not None else 0.0
    if not scene_status.stale:
        status, detail = FRESH, ""
    elif scene_status.last_error:
        status, detail = FAILED, scene_status.last_error
    else:
        status, detail = STALE, "; ".join(r.message for r in scene_status.reasons)
    return SceneReport(
        concept=sd.ref.name, batch=sd.ref.batch, number=sd.number, key=sd.key, first_frame=root / sd.frame,
        clip=root / sd.clip, debug_file=root / debug_file if debug_file is not None else None, model=model.id,
        duration=duration, aspect=settings.aspect_ratio, aspect_sent=model.api_aspect(settings.aspect_ratio)[0],
        resolution=settings.resolution, estimated_usd=duration * price, actual_usd=actual, status=status,
        detail=detail, prompt=prompt, take=take)


def collect(root: Path, targets: list[str] | None = None) -> list[ConceptReport]:
    """Every registered concept (or the targets') with a row per scene; reads only."""
    from .pipeline import compute_status
    from .pipeline.declare import project_settings

    root = Path(root).resolve()
    settings = project_settings(root)
    report = compute_status(root, targets, settings=settings)
    concepts = []
    for concept in report.concepts:
        ref = concept.decl.ref
        rows = [_scene(root, concept.decl, s, settings) for s in concept.scenes]
        concepts.append(ConceptReport(ref.batch, ref.name, sorted(rows, key=lambda r: r.number)))
    return concepts


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` inside a `size` cell, whole (contain), on black."""
    cell = Image.new("RGB", size, (16, 16, 16))
    copy = image.convert("RGB")
    copy.thumbnail(size, Image.Resampling.BICUBIC)
    cell.paste(copy, ((size[0] - copy.width) // 2, (size[1] - copy.height) // 2))
    return cell


def contact_sheet(scenes: list[SceneReport], dest: Path) -> Path:
    """A PNG with one row per scene: its label, first frame and the clip's last frame (decoded with PyAV)."""
    from .video import last_frame

    label_w, pad = 200, 8
    width = label_w + 2 * THUMB[0] + 4 * pad
    row_h = THUMB[1] + 2 * pad
    header = 28
    sheet = Image.new("RGB", (width, header + row_h * max(1, len(scenes))), (32, 32, 36))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    draw.text((pad, 6), "scene", fill=(200, 200, 200), font=font)
    draw.text((label_w + pad, 6), "first frame", fill=(200, 200, 200), font=font)
    draw.text((label_w + THUMB[0] + 3 * pad, 6), "last frame of the clip", fill=(200, 200, 200), font=font)
    for i, row in enumerate(scenes):
        y = header + i * row_h + pad
        draw.text((pad, y), f"{row.concept}\nscene {row.number}\n{row.status}", fill=(235, 235, 235), font=font)
        try:
            with Image.open(row.first_frame) as first:
                sheet.paste(_fit(first, THUMB), (label_w + pad, y))
        except OSError:
            draw.text((label_w + pad, y), "(first frame unreadable)", fill=(220, 120, 120), font=font)
        x = label_w + THUMB[0] + 3 * pad
        if row.has_clip:
            try:
                sheet.paste(_fit(last_frame(row.clip), THUMB), (x, y))
            except S9Error:
                draw.text((x, y), "(clip unreadable)", fill=(220, 120, 120), font=font)
        else:
            draw.text((x, y), "(no clip yet)", fill=(160, 160, 160), font=font)
    dest.parent.mkdir(parents=True, exist_ok=True)
    from .atomic import atomic_path

    with atomic_path(dest, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
    return dest
