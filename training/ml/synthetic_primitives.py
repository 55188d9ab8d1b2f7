"""The generator's drawing primitives and era cues (training.ml.synthetic draws coins with them).

The era cues (metal colour, copper share) vary continuously with the year; the helpers draw text strips, polygons,
polar grids, blur and low-frequency noise with NumPy and Pillow. Other generators of the project (negatives.py, the
pretraining's photos) use the public ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from training.ml.years import YEAR_MAX, YEAR_MIN

# --------------------------------------------------------------------------
# era cues (all continuous in the year)
# --------------------------------------------------------------------------

# (year, RGB in 0..1) anchors of the metal colour; linear interpolation between.
_METAL_ANCHORS: tuple[tuple[int, tuple[int, int, int]], ...] = (
    (1700, (138, 52, 40)),  # deep red copper
    (1740, (170, 78, 50)),  # copper
    (1780, (188, 108, 60)),  # orange copper
    (1820, (172, 124, 72)),  # bronze
    (1860, (128, 100, 76)),  # dark chocolate bronze
    (1890, (166, 156, 142)),  # billon, grey-brown
    (1920, (208, 207, 204)),  # silver
    (1955, (136, 154, 184)),  # cupro-nickel, cool blue-grey
    (1985, (200, 194, 100)),  # nickel-brass
    (2025, (234, 190, 50)),  # nordic gold
)
_ANCHOR_YEARS = np.array([a[0] for a in _METAL_ANCHORS], dtype=np.float64)
_ANCHOR_RGB = np.array([a[1] for a in _METAL_ANCHORS], dtype=np.float64) / 255.0
# How "coppery" the alloy is (drives green patina vs. dark toning).
_ANCHOR_COPPER = np.array([1.0, 1.0, 1.0, 0.9, 0.8, 0.3, 0.0, 0.1, 0.4, 0.5])


def era(year: float) -> float:
    """0 at 1700, 1 at 2025 (clipped)."""
    return float(np.clip((year - YEAR_MIN) / (YEAR_MAX - YEAR_MIN), 0.0, 1.0))


def smoothstep(a: float, b: float, x: float) -> float:
    s = min(max((x - a) / (b - a), 0.0), 1.0)
    return s * s * (3.0 - 2.0 * s)


def metal_colour(year: float) -> np.ndarray:
    return np.array([np.interp(year, _ANCHOR_YEARS, _ANCHOR_RGB[:, k]) for k in range(3)])


def copperness(year: float) -> float:
    return float(np.interp(year, _ANCHOR_YEARS, _ANCHOR_COPPER))


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def coin_font(px: int) -> ImageFont.FreeTypeFont:
    # Pillow's bundled font (Aileron); the only font sure to exist everywhere.
    return ImageFont.load_default(size=max(4, int(px)))


@lru_cache(maxsize=16)
def polar_grid(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Radius and angle (image coordinates, y down) of every pixel centre."""
    c = d / 2.0
    yy, xx = np.mgrid[0:d, 0:d].astype(np.float32)
    yy += 0.5 - c
    xx += 0.5 - c
    r = np.hypot(xx, yy)
    phi = np.arctan2(yy, xx)
    r.setflags(write=False)
    phi.setflags(write=False)
    return r, phi


@lru_cache(maxsize=32)
def _gauss_kernel(sigma_centi: int) -> np.ndarray:
    sigma = sigma_centi / 100.0
    half = max(1, int(math.ceil(2.5 * sigma)))
    x = np.arange(-half, half + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D float array (edge padding)."""
    if sigma < 0.15:
        return a
    k = _gauss_kernel(int(round(sigma * 100)))
    h = len(k) // 2
    p = np.pad(a, ((0, 0), (h, h)), mode="edge")
    out = np.zeros_like(a)
    w = a.shape[1]
    for i, kv in enumerate(k):
        out += kv * p[:, i : i + w]
    p = np.pad(out, ((h, h), (0, 0)), mode="edge")
    out = np.zeros_like(a)
    hh = a.shape[0]
    for i, kv in enumerate(k):
        out += kv * p[i : i + hh, :]
    return out


def lowfreq_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth random field in [0, 1] (bicubic upscaling of a small random grid)."""
    small = (rng.random((cells, cells)) * 255).astype(np.uint8)
    img = Image.fromarray(small, "L").resize((shape[1], shape[0]), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0


def scaled_points(cx: float, cy: float, scale: float, flip: float, pts: Sequence[tuple[float, float]]):
    """Map unit motif coordinates to pixels (flip = +1/-1 mirrors the motif)."""
    return [(cx + flip * u * scale, cy + v * scale) for u, v in pts]


def ellipse_polygon(cx, cy, a, b, angle, n=10):
    ca, sa = math.cos(angle), math.sin(angle)
    out = []
    for i in range(n):
        t = 2 * math.pi * i / n
        x, y = a * math.cos(t), b * math.sin(t)
        out.append((cx + x * ca - y * sa, cy + x * sa + y * ca))
    return out


def text_strip(text: str, px: int, stroke: int) -> np.ndarray:
    """Text rendered as a float height strip (rows = letter height)."""
    font = coin_font(px)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    w, h = max(1, right - left + 2), max(1, bottom - top + 2)
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).text((1 - left, 1 - top), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    return np.asarray(img, dtype=np.float32) / 255.0


def sample_bilinear(src: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h, w = src.shape
    x0 = np.floor(x).astype(np.int32)
    y0 = np.floor(y).astype(np.int32)
    fx = x - x0
    fy = y - y0
    pad = np.pad(src, 1)
    x0 = np.clip(x0 + 1, 0, w)
    y0 = np.clip(y0 + 1, 0, h)
    x1 = np.clip(x0 + 1, 0, w + 1)
    y1 = np.clip(y0 + 1, 0, h + 1)
    return (
        pad[y0, x0] * (1 - fx) * (1 - fy)
        + pad[y0, x1] * fx * (1 - fy)
        + pad[y1, x0] * (1 - fx) * fy
        + pad[y1, x1] * fx * fy
    )


