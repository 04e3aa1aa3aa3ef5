"""Where s9 keeps its own state: one `.s9/` folder at the project root, which git ignores."""

from __future__ import annotations

from pathlib import Path

STATE_DIR = ".s9"


def project_root(start: Path | None = None) -> Path:
    """The nearest folder holding `.dvc`, else `.git`, else the working directory.

    One root per project means one journal, whichever subfolder a command is run from.
    """
    here = (start or Path.cwd()).resolve()
    for marker in (".dvc", ".git"):
        for folder in (here, *here.parents):
            if (folder / marker).exists():
                return folder
    return here


def ensure_ignored(folder: Path) -> Path:
    """Create `folder` with a `.gitignore` of `*`, so no user has to edit theirs; return it."""
    if not (folder / ".gitignore").exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".gitignore").write_text("*\n", encoding="utf-8")
    return folder


def state_dir(root: Path | None = None) -> Path:
    """`<root>/.s9/`, created and git-ignored."""
    return ensure_ignored((root or project_root()) / STATE_DIR)
