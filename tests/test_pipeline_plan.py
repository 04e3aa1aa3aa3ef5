# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""`s9 plan` (what a repro would generate and cost, no API call) and the `budget.max_spend_usd` refusal."""

from __future__ import annotations

import json
from pathlib import Path

from test_pipeline_helpers import BIN, built, fresh, run

from s9 import pipeline

S9 = str(BIN / "s9")
LOCK = "pipelines/b1/tiny/dvc.lock"
INPUTS = "pipelines/b1/tiny/inputs.json"


def _params(root: Path, **replacements: str) -> None:
    text = (root / "params.yaml").read_text()
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    (root / "params.yaml").write_text(text)


def test_plan_offline_costs_nothing(fresh: Path) -> None:
    result = run([S9, "plan"], fresh)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["tiny_p1", "google/veo-3.1-fast", "4", "s", "offline", "$0.00"]
    assert len(lines) == 4
    assert lines[-1] == "Total: 3 scene(s) to generate, 12 s of video, estimated $0.00 (budget $25.00)"
    assert not (fresh / "outputs").exists() and not (fresh / LOCK).exists() and not (fresh / INPUTS).exists()


def test_plan_prices_per_second_and_snaps_durations(fresh: Path) -> None:
    """Replicate backend: snapped seconds x params price; no token needed, nothing is called."""
    _params(fresh, **{"backend: offline": "backend: replicate",
                      "video_model: google/veo-3.1-fast": "video_model: openai/sora-2",
                      "openai/sora-2: 0.10": "openai/sora-2: 0.25"})
    the_plan = pipeline.plan(fresh)
    assert [(p.model, p.seconds, p.backend, p.cost_usd) for p in the_plan.scenes] == [
        ("openai/sora-2", 4, "replicate", 1.0)] * 3
    assert the_plan.total_usd == 3.0
    data = json.loads(run([S9, "plan", "--json", "tiny_p2"], fresh).stdout)
    assert data["total_usd"] == 1.0 and data["generate"] == 1 and data["over_budget"] is False
    assert data["scenes"][0] | {"reasons": None} == {
        "stage": "pipelines/b1/tiny/dvc.yaml:p2", "key": "tiny_p2", "concept": "tiny", "scene": 2,
        "clip": "outputs/b1/tiny/tiny_p2_sora_2.mp4", "model": "openai/sora-2", "seconds": 4,
        "backend": "replicate", "cost_usd": 1.0, "how": "generate", "problem": None, "reasons": None}


def test_repro_refuses_over_budget_and_submits_nothing(fresh: Path) -> None:
    _params(fresh, **{"backend: offline": "backend: replicate", "max_spend_usd: 25.0": "max_spend_usd: 1.0"})
    result = run([S9, "repro"], fresh, check=False)
    assert result.returncode == 2
    # One clear line, and not the missing-token error: the budget is checked before the backend is touched.
    assert result.stderr.splitlines() == [
        "error: plan estimate $1.80 for 3 scene(s) exceeds budget.max_spend_usd $1.00 in params.yaml; "
        "nothing was submitted (raise the budget or repro fewer targets)"]
    assert not (fresh / "outputs").exists() and not (fresh / LOCK).exists() and not (fresh / INPUTS).exists()
    assert "⚠ over budget" in run([S9, "plan"], fresh).stderr
    # One scene fits the budget: the refusal is about the plan, not the backend.
    single = pipeline.plan(fresh, ["tiny_p1"])
    assert single.total_usd == 0.6 and not single.over_budget


def test_plan_after_generation_is_empty(built: Path) -> None:
    assert run([S9, "plan"], built).stdout.strip() == "Nothing to generate: every scene is up to date."
    assert json.loads(run([S9, "plan", "--json"], built).stdout)["scenes"] == []
