"""The dialogue as a burned-in subtitle: wrapped, fitted and drawn once per clip, then blended into every
frame's Y, U and V planes with integer weights (blending commutes with the affine RGB->YUV conversion)."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Sizes are fractions of the frame's shorter side so all three aspect ratios look alike.
_CAPTION_FONT = 1 / 20
_CAPTION_MIN_FONT = 1 / 28
_CAPTION_MAX_LINES = 3
_CAPTION_BAND_ALPHA = 160  # /255: the picture shows through, darkened
_WHITE = (235, 128, 128)  # BT.709 limited-range Y, U, V of white and black
_BLACK = (16, 128, 128)


@dataclass(frozen=True)
class Overlay:
    """Per plane (Y, U, V): what survives of the frame (/256) and what the band adds (/256, premultiplied),
    and where the band goes (luma pixels, even)."""

    keep: tuple[np.ndarray, np.ndarray, np.ndarray]
    add: tuple[np.ndarray, np.ndarray, np.ndarray]
    x: int
    y: int

    def apply(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Blend into the frame's planes, in place."""
        for n, (plane, keep, add) in enumerate(zip(planes, self.keep, self.add, strict=True)):
            x, y = (self.x, self.y) if n == 0 else (self.x // 2, self.y // 2)
            region = plane[y : y + keep.shape[0], x : x + keep.shape[1]]
            mixed = region * keep  # uint8 * uint16: at most 255 * 256, no overflow
            mixed += add
            region[...] = mixed >> 8


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled scalable font (>=10.1) is always there; system fonts are not.
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: only the small bitmap font
        return ImageFont.load_default()


# The bundled font covers ASCII plus curly quotes and a few marks, nothing else; typographic
# punctuation and letters without a decomposition are spelled with glyphs it has.
_FALLBACK = {
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-", "\u00ab": '"', "\u00bb": '"', "\u201e": '"', "\u201a": "'", "\u2039": "'",
    "\u203a": "'", "\u2022": "*", "\u00a1": "!", "\u00bf": "?", "\u00df": "ss", "\u00e6": "ae",
    "\u00c6": "AE", "\u0153": "oe", "\u0152": "OE", "\u00f8": "o", "\u00d8": "O", "\u0142": "l",
    "\u0141": "L", "\u0111": "d", "\u0110": "D", "\u00f0": "d", "\u00d0": "D", "\u00fe": "th",
    "\u00de": "Th", "\u20ac": "EUR", "\u00a3": "GBP", "\u00a9": "(c)", "\u00ae": "(R)",
    "\u2122": "TM", "\u00b0": " deg",
}  # fmt: skip


@lru_cache(maxsize=4096)
def _has_glyph(ch: str) -> bool:
    # A character the font lacks renders as its .notdef box: compare against a noncharacter's mask.
    font = _font(24)
    mask, notdef = font.getmask(ch), font.getmask("\uffff")
    return (mask.size, bytes(mask)) != (notdef.size, bytes(notdef))


def _displayable(text: str) -> str:
    """Spell characters the font lacks with ones it has: é -> e, — -> -, ß -> ss. Anything still
    missing (CJK, emoji) is kept and shows as a box, so the subtitle never silently drops words."""
    out = []
    for ch in text:
        if ch.isascii() or _has_glyph(ch):
            out.append(ch)
        elif ch in _FALLBACK:
            out.append(_FALLBACK[ch])
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(base if base and all(c.isascii() or _has_glyph(c) for c in base) else ch)
    return "".join(out)


def _clean_caption(caption: str) -> list[str]:
    """Paragraphs of the caption with whitespace collapsed and control characters dropped."""
    paragraphs = []
    for para in caption.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        text = " ".join("".join(ch if ch.isprintable() else " " for ch in para).split())
        if text:
            paragraphs.append(_displayable(text))
    return paragraphs


def _wrap(paragraphs: list[str], font: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_w: float) -> list[str]:
    lines: list[str] = []
    for para in paragraphs:
        line = ""
        for word in para.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= max_w:
                line = candidate
                continue
            if line:
                lines.append(line)
            # A word wider than the line (a URL, a long compound) is broken by characters.
            while font.getlength(word) > max_w and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and font.getlength(word[:cut]) > max_w:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        if line:
            lines.append(line)
    return lines


def _fit_caption(
    paragraphs: list[str], width: int, height: int
) -> tuple[list[str], ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    """Wrap to the frame, shrinking the font a little for long lines and ellipsizing as a last resort."""
    short = min(width, height)
    max_w = width * 0.86
    size = max(12, round(short * _CAPTION_FONT))
    min_size = max(12, round(short * _CAPTION_MIN_FONT))
    while True:
        font = _font(size)
        lines = _wrap(paragraphs, font, max_w)
        if len(lines) <= _CAPTION_MAX_LINES or size <= min_size:
            break
        size = max(min_size, size - 2)
    if len(lines) > _CAPTION_MAX_LINES:
        lines = lines[:_CAPTION_MAX_LINES]
        last = lines[-1]
        while last and font.getlength(last + "…") > max_w:
            last = last[:-1].rstrip()
        lines[-1] = last + "…"
    return lines, font


def _even_up(n: int) -> int:
    return n + n % 2


def caption_overlay(caption: str, width: int, height: int) -> Overlay | None:
    """The subtitle band for a width x height frame, or None when there is no caption."""
    paragraphs = _clean_caption(caption)
    if not paragraphs:
        return None
    lines, font = _fit_caption(paragraphs, width, height)
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (11, 0)
    line_h = round((ascent + descent) * 1.2)
    pad_x, pad_y = round(line_h * 0.7), round(line_h * 0.35)
    text_w = max(math.ceil(font.getlength(line)) for line in lines)
    # Even sizes and positions so the band maps exactly onto the half-size chroma planes.
    band_w = min(width, _even_up(text_w + 2 * pad_x))
    band_h = _even_up(line_h * len(lines) + 2 * pad_y - (line_h - ascent - descent))

    text = Image.new("L", (band_w, band_h), 0)  # glyph coverage, from FreeType's integer rasteriser
    draw = ImageDraw.Draw(text)
    for n, line in enumerate(lines):
        draw.text(((band_w - font.getlength(line)) / 2, pad_y + n * line_h), line, font=font, fill=255)
    cover = np.asarray(text, dtype=np.int64)
    band = _rounded_rect(band_w, band_h, round(line_h * 0.3)) * _CAPTION_BAND_ALPHA

    # White text (coverage c) over the black band (alpha a) over the frame, in /255**2 units:
    # frame * (255 - a) * (255 - c) + white * 255 * c + black * a * (255 - c).
    keep = (255 - band) * (255 - cover)
    keeps, adds = [], []
    for plane, (white, black) in enumerate(zip(_WHITE, _BLACK, strict=True)):
        add = white * 255 * cover + black * band * (255 - cover)
        k, a = keep, add
        if plane:  # chroma: the mean of each 2x2 block
            k = k[0::2, 0::2] + k[0::2, 1::2] + k[1::2, 0::2] + k[1::2, 1::2]
            a = a[0::2, 0::2] + a[0::2, 1::2] + a[1::2, 0::2] + a[1::2, 1::2]
            k, a = (k + 2) // 4, (a + 2) // 4
        # /255**2 -> /256; the +128 of the final rounding shift is folded into `add`.
        keeps.append(((k * 256 + 32512) // 65025).astype(np.uint16))
        adds.append(((a * 256 + 32512) // 65025 + 128).astype(np.uint16))

    bottom_margin = round(height * 0.06)
    x, y = (width - band_w) // 2, max(0, height - bottom_margin - band_h)
    return Overlay(tuple(keeps), tuple(adds), x - x % 2, y - y % 2)  # type: ignore[arg-type]


def _rounded_rect(width: int, height: int, radius: int) -> np.ndarray:
    """1 inside a rectangle with rounded corners, 0 outside; pixel centres tested in integers."""
    ys, xs = np.mgrid[0:height, 0:width]
    # Distance (doubled, to stay in integers) from each pixel centre to the nearest corner circle's centre.
    dx = np.maximum(0, np.maximum(2 * radius - (2 * xs + 1), (2 * xs + 1) - 2 * (width - radius)))
    dy = np.maximum(0, np.maximum(2 * radius - (2 * ys + 1), (2 * ys + 1) - 2 * (height - radius)))
    return (dx * dx + dy * dy <= 4 * radius * radius).astype(np.int64)
