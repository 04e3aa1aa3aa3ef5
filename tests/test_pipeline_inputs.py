# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""Bad pipeline input (broken or misshapen YAML, a params.yaml DVC cannot use, an outputs folder a stage command
cannot carry) is one `error:` line naming the file, exit 2, no traceback, and nothing written or deleted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import make_concept
from test_pipeline_helpers import BIN, CONCEPT, PARAMS, built, fresh, init_repo, run

from s9 import pipeline
from s9.errors import InputError
from s9.params import CLIP_PARAMS

S9 = str(BIN / "s9")
PROMPTS = f"data/s7_scene_prompts/b1/{CONCEPT}/{CONCEPT}_scene_prompts.json"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the repo a user (or git / DVC) would see, with its bytes; s9's and DVC's scratch left out."""
    skip = (".git/", ".s9/", ".dvc/tmp/")
    return {
        rel: path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not (rel := path.relative_to(root).as_posix()).startswith(skip)
    }


def refused(root: Path, *args: str) -> str:
    """Run `s9 ARGS` in root: exit 2, one stderr line, no traceback, no file changed; return the line."""
    before = snapshot(root)
    result = run([S9, *args], root, check=False)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    after = snapshot(root)
    assert after == before, f"s9 {' '.join(args)} changed {sorted(set(before) ^ set(after)) or 'file contents'}"
    return lines[0]


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / name
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new, 1))


def merge_conflict(root: Path, name: str) -> int:
    """Turn the file's first `md5:` line into an unresolved git conflict; return the `<<<<<<<` line number."""
    path = root / name
    lines = path.read_text().splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if "md5:" in line)
    lines[at:at + 1] = ["<<<<<<< HEAD\n", lines[at], "=======\n", lines[at].replace("md5: ", "md5: 0"),
                        ">>>>>>> other\n"]
    path.write_text("".join(lines))
    return at + 1


# -- 1. broken YAML and wrong shapes -------------------------------------------------------------------------
LOCK = f"pipelines/b1/{CONCEPT}/dvc.lock"
PIPELINE_FILE = f"pipelines/b1/{CONCEPT}/dvc.yaml"


def test_merge_conflict_in_a_lock_is_one_line_naming_the_file(built: Path) -> None:
    line = merge_conflict(built, LOCK)
    for command in (["status"], ["plan"], ["repro"], ["sync"], ["status", "--no-outputs", "--json"]):
        message = refused(built, *command)
        assert message.startswith(f"error: {LOCK}: invalid YAML at line {line + 1} ("), message
        assert f"at line {line})" in message and "merge conflict markers" in message


@pytest.mark.parametrize(("name", "content", "expected"), [
    (LOCK, "x: [\n",
     rf"{re.escape(LOCK)}: invalid YAML at line \d+ \(expected the node content, but found '<stream end>'\)"),
    (LOCK, None, rf"{re.escape(LOCK)}: expected `stages` to be a mapping, got int 5$"),
    ("dvc.yaml", "x: [\n", r"dvc\.yaml: invalid YAML at line \d+ \(expected the node content"),
    ("dvc.yaml", None, r"dvc\.yaml: expected `stages` to be a mapping, got int 5$"),
])
def test_broken_pipeline_files_are_input_errors(built: Path, name: str, content: str | None, expected: str) -> None:
    if content is None:
        (built / name).write_text("schema: '2.0'\nstages: 5\n")
    else:  # appended, as a botched merge or edit leaves it
        with (built / name).open("a") as handle:
            handle.write(content)
    for command in ("status", "plan", "repro", "sync"):
        message = refused(built, command)
        assert re.fullmatch(f"error: {expected}.*", message), message


def test_misshapen_lock_entries_are_input_errors(built: Path) -> None:
    data = yaml.safe_load((built / LOCK).read_text())
    data["stages"]["p2"]["deps"] = "data/s8_first_frames/b1/tiny/tiny_p2_first_frame.jpg"
    (built / LOCK).write_text(yaml.safe_dump(data, sort_keys=False))
    assert refused(built, "status") == (
        f"error: {LOCK}: expected stage 'p2' `deps` to be a list of mappings (path, md5, …)")
    data["stages"]["p2"] = ["not", "a", "stage"]
    (built / LOCK).write_text(yaml.safe_dump(data, sort_keys=False))
    assert refused(built, "plan") == f"error: {LOCK}: expected stage 'p2' to be a mapping, got a list"
    (built / LOCK).write_text("- just\n- a list\n")
    assert refused(built, "repro") == f"error: {LOCK}: expected the top level to be a mapping, got a list"


def test_a_broken_generated_pipeline_file_is_rewritten_not_fatal(built: Path) -> None:
    """A concept's dvc.yaml is derived from data/ and params.yaml: `s9 status` reports it (without writing),
    `s9 sync` rewrites it whole, and then everything is up to date again."""
    good = (built / PIPELINE_FILE).read_bytes()
    for broken in ("stages: 5\n", good.decode() + "x: [\n", "<<<<<<< HEAD\n" + good.decode()):
        (built / PIPELINE_FILE).write_text(broken)
        result = run([S9, "status"], built, check=False)
        assert result.returncode == 1 and "`s9 sync`" in result.stdout, result.stdout + result.stderr
        assert (built / PIPELINE_FILE).read_text() == broken  # status writes nothing git tracks
        run([S9, "sync"], built)
        assert (built / PIPELINE_FILE).read_bytes() == good
        assert run([S9, "status"], built).stdout.strip() == "All 3 scene(s) up to date."


def test_dvc_own_errors_for_a_broken_lock_are_input_errors(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What s9 does not check itself, DVC does when s9 loads the stages: mapped to one line naming the file."""
    from s9.pipeline import dvcside

    edit(built, PROMPTS, "Scene 1: a lighthouse", "Scene 1: the lighthouse")  # a stale scene: repro opens DVC
    with (built / LOCK).open("a") as handle:
        handle.write("bogus: 1\n")  # s9 reads only `stages`; DVC's schema has no such key
    assert refused(built, "repro") == f"error: {LOCK}: not a valid DVC lock file (extra keys not allowed at bogus)"
    # DVC's YAML syntax error (s9's own read normally reports it first): the same line s9 gives.
    with (built / LOCK).open("a") as handle:
        handle.write("x: [\n")
    monkeypatch.chdir(built)  # as the CLI runs: messages name files relative to the working directory
    with pytest.raises(InputError, match=rf"^{re.escape(LOCK)}: invalid YAML at line \d+ \(expected the node"), \
            dvcside.open_repo(built, lock=False) as repo:
        dvcside.load_stages(repo, Path(PIPELINE_FILE), ["p1"])


# -- 3. a clip key missing from params.yaml ------------------------------------------------------------------
def test_missing_clip_param_is_named_with_what_is_valid(built: Path) -> None:
    edit(built, "params.yaml", "  resolution: 720p\n", "")
    for command in ("plan", "repro", "status", "sync"):
        assert refused(built, command) == (
            "error: params.yaml: video_settings.resolution is missing "
            "(every concept's `inputs` stage depends on it; valid: 720p, 1080p)")


@pytest.mark.parametrize("key", CLIP_PARAMS)
def test_every_clip_param_is_required_by_sync(fresh: Path, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(fresh)
    data = yaml.safe_load((fresh / "params.yaml").read_text())
    del data["video_settings"][key]
    (fresh / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    before = (fresh / PIPELINE_FILE).read_bytes()
    with pytest.raises(InputError, match=rf"^params\.yaml: video_settings\.{key} is missing \(.*; valid: [^)]+\)$"):
        pipeline.sync(fresh)
    with pytest.raises(InputError, match=rf"video_settings\.{key} is missing"):
        pipeline.plan(fresh)
    assert (fresh / PIPELINE_FILE).read_bytes() == before


# -- 4. an outputs folder a stage command cannot carry --------------------------------------------------------
def test_outputs_dir_with_a_space_names_the_setting(fresh: Path) -> None:
    edit(fresh, "params.yaml", "video_outputs_dir: outputs", 'video_outputs_dir: "my outputs"')
    expected = ("error: params.yaml: output.video_outputs_dir 'my outputs' must be a folder below the repository "
                "root named with letters, digits, '.', '_', '-' and '/' (clip paths go unquoted into the scene "
                "stages' commands)")
    for command in ("status", "plan", "repro", "sync"):
        assert refused(fresh, command) == expected


# -- 2. add / remove check everything before touching data/ ---------------------------------------------------
BAD_SETUPS = {
    "params-invalid": lambda root: edit(root, "params.yaml", "max_workers: 3", "max_workers: 0"),
    "outputs-dir-space": lambda root: edit(root, "params.yaml", "video_outputs_dir: outputs",
                                           'video_outputs_dir: "my outputs"'),
    "clip-param-missing": lambda root: edit(root, "params.yaml", "  resolution: 720p\n", ""),
    "lock-conflict": lambda root: merge_conflict(root, LOCK),
    "root-pipeline-broken": lambda root: (root / "dvc.yaml").write_text("stages: [\n"),
}
FIRST_WORD = {"params-invalid": "params.yaml", "outputs-dir-space": "params.yaml", "clip-param-missing": "params.yaml",
              "lock-conflict": LOCK, "root-pipeline-broken": "dvc.yaml"}


@pytest.mark.parametrize("case", list(BAD_SETUPS))
def test_add_and_remove_refuse_without_touching_anything(built: Path, tmp_path: Path, case: str) -> None:
    BAD_SETUPS[case](built)
    prompts, frames = make_concept(tmp_path / "src", "harbor", batch="b1")
    changed, changed_frames = make_concept(tmp_path / "src2", CONCEPT, batch="b1",
                                           scenes=[{"scene_number": 1, "video_prompt": "Only one scene now."}])
    if case == "lock-conflict":
        # Concepts are independent: the conflict in tiny's lock stops re-adding tiny, not adding another
        # concept; removing tiny removes the conflicted lock with it.
        assert refused(built, "add", str(changed), str(changed_frames)).startswith(f"error: {LOCK}: ")
        assert "Registered harbor" in run([S9, "add", str(prompts), str(frames)], built).stdout
        assert "Removed tiny" in run([S9, "remove", CONCEPT], built).stdout
        return
    assert refused(built, "add", str(prompts), str(frames)).startswith(f"error: {FIRST_WORD[case]}: ")
    assert not (built / "data/s7_scene_prompts/b1/harbor").exists()
    # Re-adding a registered concept with new content must not replace its files either.
    assert refused(built, "add", str(changed), str(changed_frames)).startswith(f"error: {FIRST_WORD[case]}: ")
    assert refused(built, "remove", CONCEPT, "--outputs").startswith(f"error: {FIRST_WORD[case]}: ")
    assert (built / PROMPTS).is_file() and (built / f"outputs/b1/{CONCEPT}").is_dir()


def test_add_to_a_new_repo_with_bad_params_writes_no_template(tmp_path: Path) -> None:
    """Without dvc.yaml, `s9 add` would write the template; bad params.yaml means it writes nothing at all."""
    root = init_repo(tmp_path / "repo", PARAMS.replace("video_outputs_dir: outputs", "video_outputs_dir: 'a b'"))
    prompts, frames = make_concept(tmp_path / "src", "harbor", batch="b1")
    assert "output.video_outputs_dir 'a b'" in refused(root, "add", str(prompts), str(frames))
    assert not (root / "dvc.yaml").exists() and not (root / "data").exists() and not (root / "pipelines").exists()
    # Fixed, the same add goes through and writes the template.
    edit(root, "params.yaml", "video_outputs_dir: 'a b'", "video_outputs_dir: outputs")
    assert "Wrote dvc.yaml" in run([S9, "add", str(prompts), str(frames)], root).stdout


def test_add_writes_exactly_what_a_later_sync_would(built: Path, tmp_path: Path) -> None:
    for name, batch in (("aardvark", "b1"), ("zebra", "a0"), ("tinz", "b1")):
        prompts, frames = make_concept(tmp_path / name, name, batch=batch)
        pipeline.add_concept(built, prompts, frames)
        assert not pipeline.sync(built).changed
    assert sorted(p.parent.name for p in (built / "pipelines").glob("*/*/dvc.yaml")) == [
        "aardvark", "tiny", "tinz", "zebra"]
