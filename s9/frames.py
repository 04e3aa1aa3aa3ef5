"""First frames (step 8's images): where a scene's is, whether it can be sent, and its bytes' hash."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

from PIL import Image

from .errors import InputError
from .scenes import Concept

FIRST_FRAME_PATTERN = "{concept}_p{n}_first_frame.jpg"
# A first frame is a video still: 40 megapixels is far beyond any model's input, and decoding more would take
# about a gigabyte per worker. Checked from the image header, before any pixel is decoded.
MAX_FRAME_PIXELS = 40_000_000


def first_frame_path(frames_dir: Path, concept: str, scene_number: int) -> Path:
    return frames_dir / FIRST_FRAME_PATTERN.format(concept=concept, n=scene_number)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_image(path: Path, scene_number: int) -> None:
    """A first frame must exist and decode as an image before anything is sent or written."""
    what = f"first frame for scene {scene_number}"
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if not path.is_file():
        raise InputError(f"{path}: {what} is not a regular file")
    too_large = f"{path}: {what} is too large"
    try:
        # Pillow warns (to the terminal) on opening an image over ~89 megapixels and refuses one over twice
        # that; ours is the lower limit, refused below with one line.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_FRAME_PIXELS:
                    raise InputError(f"{too_large} ({width}x{height}, over {MAX_FRAME_PIXELS // 10**6} megapixels)")
                image.verify()  # the header and, for PNG, the checksums
            with Image.open(path) as image:
                image.load()  # decoding is the only way to catch a truncated JPEG before it is uploaded
    except Image.DecompressionBombError:
        raise InputError(f"{too_large} (over {MAX_FRAME_PIXELS // 10**6} megapixels)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: {what} is not a readable image ({exc})") from None


def scene_input_problem(concept: Concept, scene_number: int, first_frame: Path) -> str | None:
    """Why this scene cannot be generated from its inputs, as one line, or None when it can.

    The per-scene check every batch runs before anything is uploaded or written, so that a scene whose entry
    or first frame is missing, not a regular file, too large or unreadable is skipped and reported while the
    others run. Reads the frame; sends and writes nothing.
    """
    try:
        concept.scene(scene_number)
        check_image(Path(first_frame), scene_number)
    except InputError as exc:
        return str(exc)
    return None
