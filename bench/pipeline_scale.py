"""Pipeline bookkeeping at scale: `s9 repro` recording N scenes, and `s9 status` vs `dvc status`.

    .venv/bin/python bench/pipeline_scale.py --concepts 100 --scenes 5

Generation itself is taken out of the picture: a copy backend hands every scene the same pre-rendered
(real, verified) clip, so what is timed is s9's and DVC's bookkeeping. Work goes to bench/work/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from s9 import pipeline
from s9.backends.offline import OfflineBackend
from s9.job import Job

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
PARAMS = """\
video_settings:
  video_model: google/veo-3.1-fast
  aspect_ratio: "16:9"
  duration_seconds: 4
  resolution: 720p
  generate_audio: true
  backend: offline
  max_workers: 4
output:
  video_outputs_dir: outputs
budget:
  max_spend_usd: 25.0
"""


class CopyBackend(OfflineBackend):
    """Renders the first clip for real, then copies it: every scene here has the same clip shape."""

    def __init__(self, template: Path) -> None:
        self.template = template

    def produce(self, job: Job, api_input: dict[str, Any], dest: Path) -> None:
        if not self.template.exists():
            super().produce(job, api_input, self.template)
        shutil.copyfile(self.template, dest)


def timed(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    return time.perf_counter() - start, result


def build(root: Path, concepts: int, scenes: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=root, check=True, env=ENV)
    (root / "params.yaml").write_text(PARAMS)
    for c in range(concepts):
        name = f"concept{c:03d}"
        prompts = root / "data/s7_scene_prompts/bench" / name / f"{name}_scene_prompts.json"
        frames = root / "data/s8_first_frames/bench" / name
        prompts.parent.mkdir(parents=True)
        frames.mkdir(parents=True)
        prompts.write_text(json.dumps({"scenes": [
            {"scene_number": n, "video_prompt": f"{name}, shot {n}.", "audio_dialogue": "", "duration_seconds": 4}
            for n in range(1, scenes + 1)]}))
        for n in range(1, scenes + 1):
            Image.new("RGB", (64, 36), ((c * 7) % 256, (n * 40) % 256, 90)).save(
                frames / f"{name}_p{n}_first_frame.jpg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concepts", type=int, default=100)
    parser.add_argument("--scenes", type=int, default=5)
    parser.add_argument("--dvc-repro", action="store_true", help="also time a no-op `dvc repro` (slow at scale)")
    args = parser.parse_args()
    root = HERE / "work" / f"pipeline_scale_{args.concepts}x{args.scenes}"
    total = args.concepts * args.scenes
    build(root, args.concepts, args.scenes)
    rows: list[tuple[str, float]] = []

    start = time.perf_counter()
    pipeline.sync(root)
    rows.append(("s9 sync (write vars file)", time.perf_counter() - start))
    seconds, _ = timed([str(BIN / "s9"), "status"], root)
    rows.append(("s9 status, nothing generated", seconds))

    start = time.perf_counter()
    result = pipeline.repro(root, workers=4, backend=CopyBackend(root.parent / f"template_{total}.mp4"))
    rows.append((f"s9 repro -j 4, {total} scenes (copy backend)", time.perf_counter() - start))
    assert result.ok and len(result.recorded) == total, result.summary.success_rate()

    shutil.rmtree(root / ".s9", ignore_errors=True)
    seconds, res = timed([str(BIN / "s9"), "status"], root)
    rows.append(("s9 status, cold (no .s9 cache: hashes every file)", seconds))
    assert res.returncode == 0, res.stdout + res.stderr
    for i in range(3):
        seconds, res = timed([str(BIN / "s9"), "status"], root)
        rows.append((f"s9 status, no-op (warm), run {i + 1}", seconds))
        assert res.returncode == 0
    seconds, res = timed([str(BIN / "dvc"), "status"], root)
    rows.append(("dvc status, no-op", seconds))
    assert "up to date" in res.stdout, res.stdout
    if args.dvc_repro:
        seconds, res = timed([str(BIN / "dvc"), "repro"], root)
        rows.append(("dvc repro, no-op", seconds))

    print(f"\n{total} scene stages ({args.concepts} concepts x {args.scenes} scenes), {os.cpu_count()} cores")
    for label, seconds in rows:
        print(f"  {label:<55} {seconds:7.2f} s")


if __name__ == "__main__":
    main()
