"""The benchmark harness still runs (a smoke check of its plumbing; no figure is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_quick_renderer_writes_a_results_table(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    args = [sys.executable, str(REPO / "bench/run.py"), "--quick", "--only", "renderer", "--out", str(out)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "| offline renderer, 8 s 720p + audio, 1 core: real-time factor |" in text
    for field in ("- mode: quick", "- cores:", "- python:", "- dvc:", "## Raw figures", "render_seconds"):
        assert field in text
