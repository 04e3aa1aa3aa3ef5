"""The first frame as the clip's base picture: load, fit to the clip's aspect, convert to BT.709 YUV 4:2:0.

The planes are the same bytes on every CPU of an architecture:
- JPEG decoding is libjpeg-turbo's integer IDCT, whose SIMD and C paths give identical pixels.
- Scaling and blurring are Pillow's fixed-point C, which has no CPU dispatch (its x86-64 build is plain
  SSE2 code), with a polynomial kernel (BICUBIC; LANCZOS would call libm's sin, which has per-CPU variants).
- RGB -> YUV is integer numpy here, not swscale (whose SIMD paths round differently).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from s9.errors import InputError

from .probe import one_line

# Fit rule: the whole first frame is shown (contain) over a blurred, darkened cover-fill of itself, so a
# 16:9 frame in a 9:16 clip keeps its subject. When a cover-fit would crop at most this fraction of the
# picture, it is used instead: a sliver of fill would look like a glitch, a sliver of crop is invisible.
_COVER_TOLERANCE = Fraction(2, 100)
_FILL_SHRINK = 16  # the fill is blurred at 1/16 size, then scaled back up: cheap and very soft
_FILL_DARKEN = 150  # /256: the fill sits back so the picture reads as the subject
_RESAMPLE = Image.Resampling.BICUBIC

YUV = tuple[np.ndarray, np.ndarray, np.ndarray]  # Y (h, w), U and V (h/2, w/2), uint8, BT.709 limited range


def load_first_frame(path: Path) -> Image.Image:
    """Load an image as RGB, upright according to its EXIF orientation."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated JPEG only fails here
            upright = ImageOps.exif_transpose(img)
            return upright.convert("RGB")
    except FileNotFoundError:
        raise InputError(f"{path}: not a readable image (file not found)") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image (not a format Pillow recognises)") from None
    except (Image.DecompressionBombError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({one_line(exc)})") from None


def fit(img: Image.Image, width: int, height: int) -> np.ndarray:
    """The picture for a width x height frame, as an (height, width, 3) uint8 RGB array.

    One rule for every aspect: the whole picture (contain) over a blurred, darkened cover-fill of itself;
    or a plain cover-fit when that crops at most 2 %, so a frame of the clip's own aspect is simply scaled.
    """
    src_w, src_h = img.size
    src_aspect, aspect = Fraction(src_w, src_h), Fraction(width, height)
    crop = 1 - min(src_aspect, aspect) / max(src_aspect, aspect)  # share of the picture a cover-fit loses
    if crop <= _COVER_TOLERANCE:
        return np.asarray(_cover(img, width, height))

    small = _cover(img, max(2, width // _FILL_SHRINK), max(2, height // _FILL_SHRINK))
    small = small.filter(ImageFilter.GaussianBlur(2))
    dark = ((np.asarray(small, dtype=np.uint16) * _FILL_DARKEN + 128) >> 8).astype(np.uint8)
    canvas = np.array(Image.fromarray(dark).resize((width, height), _RESAMPLE))
    # The whole picture, at full width or full height, centred on even coordinates (chroma alignment).
    if src_aspect > aspect:
        inner_w, inner_h = width, max(2, 2 * round(width / src_aspect / 2))
    else:
        inner_w, inner_h = max(2, 2 * round(height * src_aspect / 2)), height
    x, y = (width - inner_w) // 2 // 2 * 2, (height - inner_h) // 2 // 2 * 2
    canvas[y : y + inner_h, x : x + inner_w] = np.asarray(img.resize((inner_w, inner_h), _RESAMPLE, reducing_gap=3.0))
    return canvas


def _cover(img: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to fill width x height without distortion, cropping the overflow equally from both sides."""
    src_w, src_h = img.size
    target = width / height
    if src_w / src_h > target:  # too wide: keep the full height, crop the sides
        crop_w = src_h * target
        box = ((src_w - crop_w) / 2, 0.0, (src_w + crop_w) / 2, float(src_h))
    else:  # too tall: keep the full width, crop top and bottom
        crop_h = src_w / target
        box = (0.0, (src_h - crop_h) / 2, float(src_w), (src_h + crop_h) / 2)
    # reducing_gap: a large source (e.g. 4K) is first shrunk by exact integer box averaging, cheaply.
    return img.resize((width, height), _RESAMPLE, box=box, reducing_gap=3.0)


# BT.709, limited range, from exact fractions: Y = 16 + 219 * Y', Cb = 128 + 224 * (B - Y') / 1.8556, ...
_KR, _KB = Fraction(2126, 10000), Fraction(722, 10000)
_KG = 1 - _KR - _KB
_Y_COEF = [round(k * Fraction(219, 255) * 65536) for k in (_KR, _KG, _KB)]
_CB_COEF = [round(c * Fraction(224, 255) / (2 * (1 - _KB)) * 65536) for c in (-_KR, -_KG, 1 - _KB)]
_CR_COEF = [round(c * Fraction(224, 255) / (2 * (1 - _KR)) * 65536) for c in (1 - _KR, -_KG, -_KB)]


def to_yuv420(rgb: np.ndarray) -> YUV:
    """(h, w, 3) uint8 RGB (even size) -> BT.709 limited-range planes, in integer arithmetic.
    Chroma is taken from the average of each 2x2 block (centre-sited)."""
    r, g, b = (rgb[..., c].astype(np.int32) for c in range(3))
    y = (_Y_COEF[0] * r + _Y_COEF[1] * g + _Y_COEF[2] * b + (16 << 16) + (1 << 15)) >> 16

    def quad(p: np.ndarray) -> np.ndarray:  # sum of each 2x2 block: four times the average
        return p[0::2, 0::2] + p[0::2, 1::2] + p[1::2, 0::2] + p[1::2, 1::2]

    rs, gs, bs = quad(r), quad(g), quad(b)
    u = (_CB_COEF[0] * rs + _CB_COEF[1] * gs + _CB_COEF[2] * bs + (128 << 18) + (1 << 17)) >> 18
    v = (_CR_COEF[0] * rs + _CR_COEF[1] * gs + _CR_COEF[2] * bs + (128 << 18) + (1 << 17)) >> 18
    return tuple(np.clip(p, 0, 255).astype(np.uint8) for p in (y, u, v))  # type: ignore[return-value]
