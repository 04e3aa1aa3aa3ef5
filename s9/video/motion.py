"""The slow push-in: which part of the oversized base each frame shows, and the bilinear warp that shows it.

The camera path is computed in exact rationals and handed to the warp as 16.16 fixed point; the warp is
separable bilinear in integer numpy with 8-bit weights (1/256-pixel positioning, so the motion is smooth,
not stepped). Nothing here depends on the CPU: integer operations have one answer everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# The frame is pushed in from 1.0x to this zoom over the clip; the base is fitted once at this oversize so
# the last frame is a 1:1 crop rather than an upscale.
ZOOM_END = Fraction(112, 100)
# Fraction of the margin opened up by the zoom that the pan uses (so the crop never leaves the image).
_PAN_REACH = Fraction(8, 10)
_ONE = 1 << 16  # 16.16 fixed point



def base_size(width: int, height: int) -> tuple[int, int]:
    """The oversized base picture for a width x height clip (even, so chroma halves exactly)."""
    return 2 * round(width * ZOOM_END / 2), 2 * round(height * ZOOM_END / 2)


def pan_direction(seed: bytes) -> tuple[Fraction, Fraction]:
    """A unit vector chosen by the seed, exactly: the rational point ((1 - u^2), 2u) / (1 + u^2) of the unit
    circle (u = tan of half the angle), turned by quarter turns. No trigonometry, so no libm."""
    u = Fraction(int.from_bytes(seed[:4], "big") % 65537, 65536)  # 0..1: angles 0..90 degrees
    x, y = (1 - u * u) / (1 + u * u), 2 * u / (1 + u * u)
    for _ in range(seed[4] % 4):
        x, y = -y, x
    return x, y


@dataclass(frozen=True)
class Camera:
    """One frame's view in base-luma pixels, 16.16: top-left corner and source pixels per output pixel."""

    x0: int
    y0: int
    step_x: int
    step_y: int


def camera_path(base_w: int, base_h: int, width: int, height: int, n_frames: int,
                pan: tuple[Fraction, Fraction]) -> list[Camera]:
    """Each frame's view: a smoothstep ease (like a real dolly settling) from the whole base to 1/ZOOM_END
    of it, drifting along `pan` within the margin the zoom opens. Exact rational arithmetic, kept as integer
    numerators over one common denominator per frame (Fraction would normalise after every step)."""
    last = max(1, n_frames - 1)
    ratios = (ZOOM_END - 1, *pan, _PAN_REACH)
    (zn, zd), (pxn, pxd), (pyn, pyd), (rn, rd) = ((f.numerator, f.denominator) for f in ratios)
    path = []
    for i in range(n_frames):
        # zoom = 1 + (ZOOM_END - 1) * t^2 (3 - 2t), t = i / last, as num / den.
        den = zd * last**3
        num = den + zn * i * i * (3 * last - 2 * i)
        views = []
        for size, out, (pn, pd) in ((base_w, width, (pxn, pxd)), (base_h, height, (pyn, pyd))):
            # crop = size / zoom; centre = size/2 + pan * reach * (size - crop) / 2; origin = centre - crop/2.
            crop_n, crop_d = size * den, num
            margin_n = size * crop_d - crop_n  # (size - crop) * crop_d
            d = 2 * crop_d * pd * rd
            origin_n = size * crop_d * pd * rd + pn * rn * margin_n - crop_n * pd * rd
            views.append((origin_n * _ONE // d, crop_n * _ONE // (crop_d * out)))
        (x0, step_x), (y0, step_y) = views
        path.append(Camera(x0=x0, y0=y0, step_x=step_x, step_y=step_y))
    return path


class Plane:
    """One plane of the base, ready to be warped: each sample packed with its right-hand neighbour in a
    uint16, so one gather fetches both horizontal taps."""

    def __init__(self, data: np.ndarray, scale: int) -> None:
        self.height, self.width = data.shape
        self.scale = scale  # 1 for luma, 2 for chroma (half-size planes)
        right = np.concatenate([data[:, 1:], data[:, -1:]], axis=1)
        self.pairs = data.astype(np.uint16) | (right.astype(np.uint16) << 8)  # low byte: the left sample
        self._buffers: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}

    def taps(self, origin: int, step: int, count: int, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For output samples 0..count-1: the first source tap and the two 8-bit weights (summing to 256)."""
        # Centre of output sample j, in source samples: origin + (j + 1/2) * step - 1/2.
        pos = origin // self.scale + ((2 * np.arange(count, dtype=np.int64) + 1) * step >> 1) - _ONE // 2
        np.minimum(pos, (limit - 1) * _ONE, out=pos)  # the path keeps inside the base; this is a guard
        np.maximum(pos, 0, out=pos)
        first = pos >> 16
        frac = ((pos >> 8) & 0xFF).astype(np.uint16)
        return first, 256 - frac, frac

    def warp(self, cam: Camera, out: np.ndarray) -> None:
        """Write this frame's view into `out` (height x width uint8, may be a strided view).

        Every operation is in place on reused, contiguous uint16 buffers: numpy's fast loops, and no fresh
        memory (whose page faults would cost as much as the arithmetic)."""
        out_h, out_w = out.shape
        if (out_h, out_w) not in self._buffers:
            self._buffers[out_h, out_w] = tuple(
                np.empty(shape, dtype=np.uint16)
                for shape in ((self.height, out_w), (self.height, out_w), (out_h, out_w), (out_h, out_w))
            )
        across_buf, right_buf, down, below = self._buffers[out_h, out_w]
        xs, wl, wr = self.taps(cam.x0, cam.step_x, out_w, self.width)
        ys, wt, wb = self.taps(cam.y0, cam.step_y, out_h, self.height)
        top = int(ys[0])
        rows = self.pairs[top : min(int(ys[-1]) + 2, self.height)]
        # Horizontal pass, on just the rows this frame needs: left * wl + right * wr, rounded to 8 bits.
        across, right = across_buf[: rows.shape[0]], right_buf[: rows.shape[0]]
        np.take(rows, xs, axis=1, out=across, mode="clip")
        np.right_shift(across, 8, out=right)
        across &= 0xFF
        across *= wl
        right *= wr
        across += right
        across += 128
        across >>= 8
        # Vertical pass: two row gathers (contiguous copies) and one weighted sum.
        ys -= top
        np.take(across, ys, axis=0, out=down, mode="clip")
        np.take(across, ys + 1, axis=0, out=below, mode="clip")  # clip: the last row repeats
        down *= wt[:, None]
        below *= wb[:, None]
        down += below
        down += 128
        down >>= 8
        out[...] = down
