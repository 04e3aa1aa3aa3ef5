# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""`s9 repro` on the Replicate backend against the shipped fake server: a scene the API refuses stays stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_pipeline_helpers import BIN, CONCEPT, dvc_stale, fresh, lock, run, s9_stale, stages

from s9.fake import FakeConfig, FakeReplicate

S9 = str(BIN / "s9")
PROMPTS = f"data/s7_scene_prompts/b1/{CONCEPT}/{CONCEPT}_scene_prompts.json"


@pytest.mark.slow
def test_a_scene_the_api_refuses_stays_stale(fresh: Path) -> None:
    params = fresh / "params.yaml"
    params.write_text(params.read_text().replace("backend: offline", "backend: replicate"))
    data = json.loads((fresh / PROMPTS).read_text())
    data["scenes"][1]["video_prompt"] = "A FORBIDDEN shot of the lighthouse."
    (fresh / PROMPTS).write_text(json.dumps(data, indent=2))
    with FakeReplicate(config=FakeConfig(latency=0.2, flag_word="forbidden")) as server:
        env = {"REPLICATE_API_TOKEN": "r8_test", "REPLICATE_BASE_URL": server.base_url,
               "REPLICATE_POLL_INTERVAL": "0.1"}
        result = run([S9, "repro", "-j", "3"], fresh, check=False, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Success rate: 2/3 (67%)" in result.stdout and "Backend: replicate" in result.stdout
    assert "Scene 2 failed" in result.stderr and "E005" in result.stderr
    assert "Recorded in dvc.lock: 2 scene stage(s)" in result.stdout
    assert set(lock(fresh)) == {"inputs", "p1", "p3"}
    assert "E005" in (fresh / f"outputs/b1/{CONCEPT}/debug/scene_2/error.txt").read_text()
    # The concept's metrics: what the two clips cost (each clip's receipt, from the journal), and the failure.
    metrics = json.loads((fresh / f"pipelines/b1/{CONCEPT}/metrics.json").read_text())
    receipts = [json.loads((fresh / f"outputs/b1/{CONCEPT}/debug/scene_{n}/receipt.json").read_text()) for n in (1, 3)]
    assert all(r["backend"] == "replicate" and r["prediction_id"] and r["cost_usd"] == 0.6 for r in receipts)
    assert (metrics["clips"], metrics["failed_scenes"], metrics["actual_cost_usd"]) == (2, 1, 1.2)
    assert metrics["estimated_cost_usd"] == 1.8 and metrics["generation_seconds"] > 0  # the API's predict_time
    assert dvc_stale(fresh) == stages(2) == s9_stale(fresh)


@pytest.mark.slow
def test_repro_runs_the_stale_scenes_concurrently(fresh: Path) -> None:
    """-j 3 on 3 stale scenes: every prediction is created before any finishes (an ordering, not a timing)."""
    params = fresh / "params.yaml"
    params.write_text(params.read_text().replace("backend: offline", "backend: replicate"))
    with FakeReplicate(config=FakeConfig(latency=2.0)) as server:
        env = {"REPLICATE_API_TOKEN": "r8_test", "REPLICATE_BASE_URL": server.base_url}
        result = run([S9, "repro", "-j", "3"], fresh, check=False, env=env)
        records = server.predictions()
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(records) == 3 and {r["status"] for r in records} == {"succeeded"}
    assert max(r["created_at"] for r in records) < min(r["completed_at"] for r in records)
    assert dvc_stale(fresh) == set() == s9_stale(fresh)
