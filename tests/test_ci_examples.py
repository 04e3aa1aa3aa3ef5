"""The example CI workflows in docs/ci are valid YAML and every s9 command in them parses as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO

from s9.cli.app import cli
from s9.pipeline.plan import Plan

WORKFLOWS = sorted((REPO / "docs" / "ci").glob("*.yml"))
# What the CI systems put in place of their variables.
SUBSTITUTIONS = {"${{ matrix.shard }}": "2", "${{ strategy.job-total }}": "4", "$CI_NODE_INDEX": "2",
                 "$CI_NODE_TOTAL": "4"}


def _scripts(node: object) -> list[str]:
    """Every shell line of a workflow: GitHub's `run:` and GitLab's `script:` entries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "run" and isinstance(value, str):
                found += value.splitlines()
            elif key == "script" and isinstance(value, list):
                found += [line for line in value if isinstance(line, str)]
            else:
                found += _scripts(value)
    elif isinstance(node, list):
        for item in node:
            found += _scripts(item)
    return found


def _s9_commands(path: Path) -> list[list[str]]:
    commands = []
    for line in _scripts(yaml.safe_load(path.read_text())):
        line = line.split("#", 1)[0].strip()
        for variable, value in SUBSTITUTIONS.items():
            line = line.replace(variable, value)
        if re.match(r"s9\s", line):
            commands.append(shlex.split(line.split(">", 1)[0])[1:])
    return commands


def test_both_ci_systems_have_an_example() -> None:
    assert [p.name for p in WORKFLOWS] == ["github-actions.yml", "gitlab-ci.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_s9_command_of_the_workflow_parses(path: Path) -> None:
    commands = _s9_commands(path)
    assert any("--shard" in c for c in commands) and ["repro"] in commands and ["plan", "--json"] in commands
    runner = CliRunner()
    for args in commands:
        # --help is eager: click has parsed every option before it, so an unknown one or a bad -j fails here.
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        if "--shard" in args:
            from s9.pipeline.shard import Shard

            shard = Shard.parse(args[args.index("--shard") + 1])
            assert (shard.index, shard.count) == (2, 4)


def test_the_gather_jobs_plan_check_reads_a_key_s9_plan_writes() -> None:
    # Both workflows stop the gather job on `json.load(...)['generate']` of `s9 plan --json`.
    for path in WORKFLOWS:
        assert "['generate']" in path.read_text()
    assert Plan([], None).as_dict()["generate"] == 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
@pytest.mark.parametrize(("left", "code"), [(0, 0), (3, 1)])
def test_the_gather_check_stops_only_when_scenes_are_left(path: Path, left: int, code: int, tmp_path: Path) -> None:
    """The workflow's own check, run by bash on a plan.json: it passes when the shards made everything."""
    import json
    import os
    import subprocess
    import sys

    script = "\n".join(line for line in _scripts(yaml.safe_load(path.read_text()))
                       if "plan.json" in line or line.strip().startswith("sys.exit"))
    script = script.replace("s9 plan --json > plan.json", "")
    (tmp_path / "plan.json").write_text(json.dumps({"generate": left}))
    (tmp_path / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == code, (script, proc.stderr)
    assert ("3 scene(s) were not made by the shards" in proc.stderr) == bool(left)
