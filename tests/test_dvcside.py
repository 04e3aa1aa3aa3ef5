# ruff: noqa: F401, F811 - pytest fixtures imported from test_pipeline_helpers (used as arguments)
"""One test per use of DVC's internals in `s9.pipeline.dvcside`: when a DVC upgrade changes one of them, the
failure is here, named, rather than somewhere in the middle of a repro. Real repos, real DVC."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_pipeline_helpers import BIN, CONCEPT, built, clip, run

from s9.errors import InputError, S9Error
from s9.pipeline import dvcside
from s9.pipeline.declare import declared, project_settings
from s9.pipeline.dvcside import runcache
from s9.pipeline.resolve import scene_inputs

DVC = str(BIN / "dvc")
PIPELINE_FILE = Path(f"pipelines/b1/{CONCEPT}/dvc.yaml")
FRAME = f"data/s8_first_frames/b1/{CONCEPT}/{CONCEPT}_p2_first_frame.jpg"


@pytest.fixture
def repo(built: Path):  # noqa: ANN201 - a dvc Repo
    with dvcside.open_repo(built, lock=True) as opened:  # DVC asserts the lock where stages are committed
        yield opened


def test_open_repo_lock_is_dvcs_and_a_busy_repo_is_an_input_error(built: Path) -> None:
    with dvcside.open_repo(built, lock=True):
        assert (built / ".dvc/tmp/lock").exists()
        with pytest.raises(InputError, match="DVC repository is busy .*Nothing was changed$"), \
                dvcside.open_repo(built, lock=True):
            pass


def test_git_index_is_read_once_per_change_and_answers_as_scmrepo(built: Path) -> None:
    """DVC's `Output.ignore` asks `scm.is_tracked` for every out it saves; the memo answers exactly what
    scmrepo's dulwich backend answers, reading the index only when it changed."""
    from dulwich.repo import Repo as DulwichRepo

    real = DulwichRepo.open_index
    reads: list[int] = []

    def counting(self: DulwichRepo, *args: object, **kwargs: object) -> object:
        reads.append(1)
        return real(self, *args, **kwargs)

    run(["git", "add", "data"], built)
    tracked, untracked = built / FRAME, built / clip(2)
    folder = built / Path(FRAME).parent
    with dvcside.open_repo(built, lock=False) as repo:
        plain = type(repo.scm).is_tracked  # scmrepo's own, unpatched
        paths = [tracked, untracked, folder, built / "nowhere", tracked, folder]
        expected = [plain(repo.scm, str(path)) for path in paths]
        assert expected == [True, False, True, False, True, True]
        DulwichRepo.open_index = counting
        try:
            assert [repo.scm.is_tracked(str(path)) for path in paths] == expected
            assert len(reads) == 1  # scmrepo reads the whole index for each question; the memo once for all
            (built / "new.txt").write_text("x")
            run(["git", "add", "new.txt"], built)  # the index changed: read again
            assert repo.scm.is_tracked(str(built / "new.txt")) and len(reads) == 2
        finally:
            DulwichRepo.open_index = real
    assert "is_tracked" not in vars(repo.scm)  # restored when the command ends


def test_param_files_are_parsed_once_per_stat(built: Path) -> None:
    from dvc.dependency import param

    real = param.load_path
    calls: list[str] = []

    def counting(path: str, fs: object, **kwargs: object) -> object:
        calls.append(path)
        return real(path, fs, **kwargs)

    param.load_path = counting
    try:
        with dvcside.open_repo(built, lock=False) as repo:
            path = os.path.join(repo.root_dir, "params.yaml")
            first = param.load_path(path, repo.fs)
            for _ in range(2):
                assert param.load_path(path, repo.fs) == first
            assert len(calls) == 1
            first["video_settings"]["max_workers"] = 99  # a caller's change never leaks into the memo
            assert param.load_path(path, repo.fs)["video_settings"]["max_workers"] == 3
            (built / "params.yaml").write_text((built / "params.yaml").read_text() + "\n# changed\n")
            param.load_path(path, repo.fs)
            assert len(calls) == 2
        assert param.load_path is counting
    finally:
        param.load_path = real


def test_edit_yaml_round_trips_like_dvc(built: Path) -> None:
    path = built / "params.yaml"
    path.write_text("# keep me\n" + path.read_text())
    with dvcside.edit_yaml(built, path) as data:
        data["video_settings"]["max_workers"] = 5
    text = path.read_text()
    assert text.startswith("# keep me\n") and "max_workers: 5" in text
    assert "aspect_ratio: 16:9" in text  # written as YAML 1.2, as `dvc exp run -S` writes it


def test_load_stages_dep_values_record_dump_and_out_hashes(built: Path, repo) -> None:  # noqa: ANN001
    stages = dvcside.load_stages(repo, PIPELINE_FILE, ["p2"])
    stage = stages["p2"]
    deps = dvcside.dep_values(stage)
    assert set(deps) == {FRAME, f"pipelines/b1/{CONCEPT}/inputs.json"}
    assert deps[FRAME]["md5"] and deps[f"pipelines/b1/{CONCEPT}/inputs.json"]["params"]["p2"]["model"]
    lock_before = (built / PIPELINE_FILE.parent / "dvc.lock").read_bytes()
    runs_before = sorted((built / ".dvc/cache/runs").rglob("*"))
    assert dvcside.record(stage, expected_deps={**deps, FRAME: {"md5": "0" * 32}}) is False
    assert sorted((built / ".dvc/cache/runs").rglob("*")) == runs_before  # no run-cache entry
    assert dvcside.record(stage, expected_deps=deps) is True
    dvcside.dump([stage])
    assert (built / PIPELINE_FILE.parent / "dvc.lock").read_bytes() == lock_before  # same inputs, same entry
    hashes = dvcside.file_hashes(stage)
    debug = f"outputs/b1/{CONCEPT}/debug/scene_2"
    assert set(hashes) == {clip(2), FRAME, f"{debug}/veo3_p2_prompt.txt", f"{debug}/receipt.json"}
    from s9.pipeline.hashing import file_md5

    assert all(file_md5(built / path) == md5 for path, md5 in hashes.items())


def test_stage_loader_parses_both_files_once(built: Path, repo) -> None:  # noqa: ANN001
    load = dvcside.stage_loader(repo, PIPELINE_FILE)
    lock = built / PIPELINE_FILE.parent / "dvc.lock"
    recorded = dvcside.load_stages(repo, PIPELINE_FILE, ["p2"])["p2"].outs[0].hash_info.value
    text = lock.read_text()
    lock.write_text("stages: [not a lock\n")  # what is on disk now is not read again
    try:
        stages = load(["p1", "p2"])
    finally:
        lock.write_text(text)
    assert set(stages) == {"p1", "p2"} and stages["p2"].outs[0].hash_info.value == recorded and recorded


def test_dep_values_of_a_missing_frame_is_an_s9_error(built: Path, repo) -> None:  # noqa: ANN001
    (built / FRAME).unlink()
    with pytest.raises(S9Error):
        dvcside.dep_values(dvcside.load_stages(repo, PIPELINE_FILE, ["p2"])["p2"])


def test_restore_checks_out_recorded_outs_and_never_deletes_first(built: Path, repo) -> None:  # noqa: ANN001
    original = (built / clip(1)).read_bytes()
    (built / clip(1)).unlink()
    assert dvcside.restore(dvcside.load_stages(repo, PIPELINE_FILE, ["p1"])["p1"], pull=False) is True
    assert (built / clip(1)).read_bytes() == original
    # Nothing to restore from (an edited frame, an empty cache): the workspace clip stays where it is.
    (built / FRAME).write_bytes((built / FRAME).read_bytes() + b"\0")
    import shutil

    shutil.rmtree(built / ".dvc/cache")
    before = (built / clip(2)).read_bytes()
    assert dvcside.restore(dvcside.load_stages(repo, PIPELINE_FILE, ["p2"])["p2"], pull=False) is False
    assert (built / clip(2)).read_bytes() == before


def test_virtual_stage_has_the_run_cache_key_of_the_real_one(built: Path, repo) -> None:  # noqa: ANN001
    """The plan looks runs up from the stage as it will be, before anything is written: its key must be the
    key DVC computes for the stage once synced and resolved."""
    from dvc.stage.cache import _get_stage_hash

    [decl] = declared(built)
    entries = scene_inputs(decl, project_settings(built))
    virtual = dvcside.virtual_stage(repo, decl, "p2", entries["p2"])
    real = dvcside.load_stages(repo, PIPELINE_FILE, ["p2"])["p2"]
    dvcside.dep_values(real)
    assert runcache._run_key(virtual) == _get_stage_hash(real)
    entry = dvcside.local_run_cache_entry(virtual)
    assert entry is not None and dvcside.entry_cached(repo, entry)
    assert {o["path"] for o in entry["outs"]} == {clip(2), f"outputs/b1/{CONCEPT}/debug/scene_2"}
    # Another prompt: another key, no run.
    other = dvcside.virtual_stage(repo, decl, "p2", {**entries["p2"], "input": {"prompt": "never made"}})
    assert dvcside.local_run_cache_entry(other) is None
    (built / FRAME).unlink()
    assert dvcside.virtual_stage(repo, decl, "p2", entries["p2"]) is None  # a dep that cannot be hashed


def test_cached_and_ignore_remove(built: Path, repo) -> None:  # noqa: ANN001
    lock = json.loads(json.dumps(__import__("yaml").safe_load((built / PIPELINE_FILE.parent / "dvc.lock").read_text())))
    outs = {o["path"]: o["md5"] for o in lock["stages"]["p1"]["outs"]}
    assert all(dvcside.cached(repo, md5) for md5 in outs.values())
    assert not dvcside.cached(repo, "0" * 32) and not dvcside.cached(repo, "0" * 32 + ".dir")
    ignore = built / f"outputs/b1/{CONCEPT}/.gitignore"
    ignore.write_text(f"/{CONCEPT}_p1_veo_3.1_fast.mp4\n/{CONCEPT}_p2_veo_3.1_fast.mp4\n")
    dvcside.ignore_remove(repo, built / clip(1))
    assert ignore.read_text() == f"/{CONCEPT}_p2_veo_3.1_fast.mp4\n"


@pytest.mark.slow
def test_remote_calls(built: Path, tmp_path: Path) -> None:
    """default_remote, the remote look-ups the plan makes (recorded outs, run cache read in place) and the
    run-cache pull `s9 repro` makes, against a local remote."""
    with dvcside.open_repo(built, lock=False) as repo:
        assert dvcside.default_remote(repo) is None
    run([DVC, "remote", "add", "-d", "shared", str(tmp_path / "remote")], built)
    run(["git", "add", "-A"], built)
    run(["git", "commit", "-q", "-m", "clips"], built)
    run([DVC, "push", "--run-cache"], built)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(built), str(clone)], tmp_path)
    [decl] = declared(clone)
    entries = scene_inputs(decl, project_settings(clone))
    with dvcside.open_repo(clone, lock=True) as repo:
        assert dvcside.default_remote(repo) == "shared"
        assert dvcside.locked_outs_on_remote(repo, PIPELINE_FILE, "p1")
        virtual = dvcside.virtual_stage(repo, decl, "p1", entries["p1"])
        assert dvcside.local_run_cache_entry(virtual) is None  # nothing local in a fresh clone
        entry = dvcside.remote_run_cache_entry(repo, virtual)
        assert entry is not None and dvcside.entry_on_remote(repo, entry)
        assert not dvcside.entry_on_remote(repo, {"outs": [{"path": "x", "md5": "0" * 32}]})
        dvcside.pull_run_cache(repo)
        assert dvcside.local_run_cache_entry(virtual) == entry
        assert dvcside.restore(dvcside.load_stages(repo, PIPELINE_FILE, ["p1"])["p1"], pull=True)
    assert (clone / clip(1)).read_bytes() == (built / clip(1)).read_bytes()


@pytest.mark.slow
def test_exp_save_and_exp_run(built: Path) -> None:
    run(["git", "add", "-A"], built)
    run(["git", "commit", "-q", "-m", "clips"], built)
    with dvcside.edit_yaml(built, built / "params.yaml") as data:
        data["video_settings"]["max_workers"] = 4
    assert dvcside.exp_save(built, "saved")
    with dvcside.edit_yaml(built, built / "params.yaml") as data:
        data["video_settings"]["max_workers"] = 5
    dvcside.exp_run(built, queue=True, tmp_dir=False, name="queued")
    listing = run([DVC, "queue", "status"], built).stdout
    assert "queued" in listing and "Queued" in listing
    assert "saved" in run([DVC, "exp", "ls"], built).stdout


@pytest.mark.slow
def test_a_root_dvc_yaml_without_stages_makes_dvc_repro_reproduce_every_pipeline(built: Path) -> None:
    """The layout depends on it: plain `dvc repro` (target ./dvc.yaml) with no stages there plans the whole
    graph, so every concept's pipeline is reproduced."""
    (built / clip(3)).unlink()
    out = run([DVC, "repro"], built).stdout
    assert f"{PIPELINE_FILE.as_posix()}:p3' is cached - skipping run" in out
    assert (built / clip(3)).is_file()


def test_record_and_restore_leave_nothing_in_fsspecs_memory_store(built: Path, repo) -> None:  # noqa: ANN001
    """DVC stages directory listings in fsspec's process-wide memory filesystem and never removes them; s9
    drops what a record or restore added, once the outs are in the cache."""
    from fsspec.implementations.memory import MemoryFileSystem

    keys, dirs = set(MemoryFileSystem.store), list(MemoryFileSystem.pseudo_dirs)
    stage = dvcside.load_stages(repo, PIPELINE_FILE, ["p2"])["p2"]
    assert dvcside.record(stage)
    dvcside.dump([stage])
    (built / clip(1)).unlink()
    assert dvcside.restore(dvcside.load_stages(repo, PIPELINE_FILE, ["p1"])["p1"], pull=False)
    assert set(MemoryFileSystem.store) == keys and MemoryFileSystem.pseudo_dirs == dirs
    # ...and what was recorded is whole: the debug folder's listing is in the cache, the lock is current.
    listing = next(o for o in dvcside.load_stages(repo, PIPELINE_FILE, ["p2"])["p2"].outs if o.hash_info.isdir)
    assert dvcside.cached(repo, listing.hash_info.value)
    assert dvcside.load_stages(repo, PIPELINE_FILE, ["p2"])["p2"].changed() is False


def test_forget_walked_drops_dvcs_ignore_filter(repo) -> None:  # noqa: ANN001
    walked = repo.dvcignore
    assert repo.dvcignore is walked  # a cached property: it keeps what it was asked
    dvcside.forget_walked(repo)
    assert repo.dvcignore is not walked


def test_open_repo_gives_dvcs_state_databases_small_sqlite_caches(built: Path) -> None:
    import threading

    from dvc.repo import Repo

    def pragmas(db) -> tuple[int, int]:  # noqa: ANN001 - diskcache's connection for this thread, via `_sql`
        return db._sql("PRAGMA mmap_size").fetchone()[0], db._sql("PRAGMA cache_size").fetchone()[0]

    with dvcside.open_repo(built, lock=True) as repo:  # DVC's lock closed the connections it found open
        dbs = (repo.state.hashes, repo.state.links)
        assert [pragmas(db) for db in dbs] == [(0, 512)] * 2
        seen: list[tuple[int, int]] = []
        worker = threading.Thread(target=lambda: seen.extend(pragmas(db) for db in dbs))  # DVC's thread pools
        worker.start()
        worker.join()
        assert seen == [(0, 512)] * 2
    with Repo(str(built)) as plain:  # nothing was written to the databases: DVC's own settings hold for dvc
        assert pragmas(plain.state.hashes)[0] == 2**26


def test_route_dvc_logs_writes_dvcs_log_lines_through_the_current_stdout() -> None:
    # A process of its own: DVC's handlers take the real stdout and stderr (fds 1 and 2) when dvc is imported.
    code = """
import io, logging, sys
from s9.pipeline import dvcside
handlers = [h for h in logging.getLogger("dvc").handlers if isinstance(h, logging.StreamHandler)]
before = [h.stream for h in handlers]
real, live = sys.stdout, io.StringIO()  # `live`: what rich's live display puts in sys.stdout while it draws
restore = dvcside.route_dvc_logs()
sys.stdout = live
logging.getLogger("dvc.dvcfile").info("Updating lock file 'x/dvc.lock'")
sys.stdout = real
restore()
assert [h.stream for h in handlers] == before
logging.getLogger("dvc.dvcfile").info("after")
sys.stderr.write("live=" + repr(live.getvalue()))
"""
    proc = run([str(BIN / "python"), "-c", code], Path.cwd(), check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "live=\"Updating lock file 'x/dvc.lock'\\n\"" and proc.stdout == "after\n"


def test_mute_progress_bars_turns_dvcs_tqdm_off() -> None:
    import io

    from dvc.progress import Tqdm
    from dvc_data.callbacks import Tqdm as DataTqdm

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    for bar in (Tqdm, DataTqdm):
        assert not bar(total=3, file=Tty()).disable  # on a terminal DVC draws its bars
        unmute = dvcside.mute_progress_bars()
        try:
            assert bar(total=3, file=Tty()).disable
        finally:
            unmute()
        assert not bar(total=3, file=Tty()).disable


def test_has_local_run_cache_and_pipeline_data(built: Path, repo) -> None:  # noqa: ANN001
    [decl] = declared(built)
    assert dvcside.pipeline_data(decl)["stages"]["p2"]["cmd"] == decl.commands()["p2"]
    assert dvcside.has_local_run_cache(repo)  # the fixture's repro left run-cache entries
    import shutil

    shutil.rmtree(built / ".dvc/cache/runs")
    assert not dvcside.has_local_run_cache(repo)


@pytest.mark.slow
def test_push_scene_and_remote_folder(built: Path, tmp_path: Path) -> None:
    """`push_scene` puts a recorded stage's outputs and then its run-cache entry on the default remote (which
    `dvc push --run-cache` would not do for the outputs); a fresh clone restores the scene from there. A remote
    folder of s9's own holds plain files beside DVC's."""
    run([DVC, "remote", "add", "-d", "shared", str(tmp_path / "remote")], built)
    run(["git", "add", "-A"], built)
    run(["git", "commit", "-q", "-m", "clips"], built)
    with dvcside.open_repo(built, lock=True) as repo:
        stage = dvcside.load_stages(repo, PIPELINE_FILE, ["p2"])["p2"]
        assert dvcside.record(stage)
        assert dvcside.push_scene(repo, stage)
        folder = dvcside.RemoteFolder(repo, "s9", "journal")
        assert folder.names() == set()
        folder.write("a.json", b"{}")
        assert folder.names() == {"a.json"} and folder.read("a.json") == b"{}"
    assert (tmp_path / "remote/s9/journal/a.json").is_file()
    runs = list((tmp_path / "remote/runs").rglob("*"))
    assert len([p for p in runs if p.is_file()]) == 1  # this stage's entry only
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(built), str(clone)], tmp_path)
    [decl] = declared(clone)
    entries = scene_inputs(decl, project_settings(clone))
    with dvcside.open_repo(clone, lock=True) as repo:
        virtual = dvcside.virtual_stage(repo, decl, "p2", entries["p2"])
        entry = dvcside.remote_run_cache_entry(repo, virtual)
        assert entry is not None and dvcside.entry_on_remote(repo, entry)
        dvcside.pull_run_cache(repo)
        assert dvcside.restore(dvcside.load_stages(repo, PIPELINE_FILE, ["p2"])["p2"], pull=True)
    assert (clone / clip(2)).read_bytes() == (built / clip(2)).read_bytes()
