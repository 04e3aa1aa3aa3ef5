"""`s9 repro -j 3` vs sequential on the sample concept's 5 scenes, from scratch each time.

    .venv/bin/python bench/pipeline_parallel.py [--latency 6]

Two backends: offline (CPU-bound rendering: parallelism is capped by the cores) and replicate against the
shipped fake server with a per-prediction latency (I/O-bound, like the real API: parallelism is what counts).
Each is timed with `s9 repro -j 3`, `s9 repro -j 1` and plain `dvc repro` (one `s9 stage` process per scene).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from s9.fake_replicate import FakeConfig, FakeReplicate

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


def fresh_repo(root: Path, backend: str) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=root, check=True, env=ENV)
    shutil.copytree(REPO / "data", root / "data")
    params = (REPO / "params.yaml").read_text().replace("backend: offline", f"backend: {backend}")
    (root / "params.yaml").write_text(params)
    subprocess.run([str(BIN / "s9"), "sync"], cwd=root, check=True, env=ENV, capture_output=True)
    return root


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=6.0, help="fake prediction latency, seconds")
    args = parser.parse_args()
    work = HERE / "work" / "pipeline_parallel"
    runs = {
        "s9 repro -j 3": [str(BIN / "s9"), "repro", "-j", "3"],
        "s9 repro -j 1": [str(BIN / "s9"), "repro", "-j", "1"],
        "dvc repro": [str(BIN / "dvc"), "repro"],
    }
    print(f"sample concept, 5 scenes, {os.cpu_count()} cores")
    for backend in ("offline", "replicate"):
        with FakeReplicate(config=FakeConfig(latency=args.latency, render_workers=3)) as server:
            env = {**ENV, "REPLICATE_API_TOKEN": "r8_bench", "REPLICATE_BASE_URL": server.base_url}
            for label, command in runs.items():
                root = fresh_repo(work / f"{backend}-{label.replace(' ', '_')}", backend)
                seconds = timed(command, root, env)
                extra = f" (fake API latency {args.latency:g} s)" if backend == "replicate" else ""
                print(f"  {backend:<9} {label:<14} {seconds:7.1f} s{extra}")


if __name__ == "__main__":
    main()
