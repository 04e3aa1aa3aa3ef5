"""Shared fixtures: small real concepts (prompts JSON + JPEG first frames) in temp folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
SAMPLE_BATCH = "sample_batch"
SAMPLE_CONCEPT = "watchmaker_journey"
SAMPLE_PROMPTS = REPO / "data/s7_scene_prompts" / SAMPLE_BATCH / SAMPLE_CONCEPT / f"{SAMPLE_CONCEPT}_scene_prompts.json"
SAMPLE_FRAMES = REPO / "data/s8_first_frames" / SAMPLE_BATCH / SAMPLE_CONCEPT


def make_frame(path: Path, size: tuple[int, int] = (640, 360), color: tuple[int, int, int] = (200, 120, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    draw.ellipse([size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2], fill=(250, 240, 200))
    image.save(path, quality=85)
    return path


def make_concept(
    root: Path,
    name: str = "tiny",
    scenes: list[dict] | None = None,
    batch: str = "b1",
    frames: bool = True,
) -> tuple[Path, Path]:
    """Write a step-7 style prompts file and step-8 style frames under root; return (prompts, frames_dir)."""
    if scenes is None:
        scenes = [
            {
                "scene_number": n,
                "video_prompt": f"Scene {n}: a lighthouse at dusk, slow push-in.",
                "audio_background": "Waves and a soft cello.",
                "audio_dialogue": f'Keeper: "Light number {n}."' if n != 2 else "",
                "duration_seconds": 4,
            }
            for n in (1, 2, 3)
        ]
    prompts = root / "s7" / batch / name / f"{name}_scene_prompts.json"
    prompts.parent.mkdir(parents=True, exist_ok=True)
    prompts.write_text(json.dumps({"scenes": scenes}, indent=2))
    frames_dir = root / "s8" / batch / name
    frames_dir.mkdir(parents=True, exist_ok=True)
    if frames:
        for i, scene in enumerate(scenes):
            number = scene.get("scene_number", i + 1)
            make_frame(frames_dir / f"{name}_p{number}_first_frame.jpg", color=(40 * i % 255, 120, 200))
    return prompts, frames_dir


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (the 'repo') that tests run in; no token leaks in from the machine."""
    monkeypatch.chdir(tmp_path)
    for var in ("REPLICATE_API_TOKEN", "REPLICATE_API_KEY", "REPLICATE_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def sample(workdir: Path) -> tuple[Path, Path]:
    """The shipped sample concept copied into the working directory."""
    prompts = workdir / "data" / SAMPLE_PROMPTS.relative_to(REPO / "data")
    frames = workdir / "data" / SAMPLE_FRAMES.relative_to(REPO / "data")
    prompts.parent.mkdir(parents=True)
    shutil.copy(SAMPLE_PROMPTS, prompts)
    shutil.copytree(SAMPLE_FRAMES, frames)
    return prompts, frames


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA and a server certificate for 127.0.0.1, so the fake API can serve https (FileOutput)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    return paths
