"""The tests-only renderer's camera: surfaces to lay a coin on, a pinhole view of the tilted coin, and the photo.

Part of tests/generalisation/renderer.py (split for length); shares no code with training's photo pipeline.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

BACKGROUNDS = ("wood", "velvet", "graph_paper", "linen", "marble", "slate")

# --- small numeric helpers ------------------------------------------------------------------------------------------


def box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Separable box blur of radius r (edge-padded); three passes approximate a Gaussian of sigma ~ r."""
    if r < 1:
        return a
    out = a.astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r + 1, r)
        c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis, dtype=np.float64)
        hi = np.take(c, np.arange(2 * r + 1, c.shape[axis]), axis=axis)
        lo = np.take(c, np.arange(0, c.shape[axis] - 2 * r - 1), axis=axis)
        out = ((hi - lo) / (2 * r + 1)).astype(np.float32)
    return out


def smooth(a: np.ndarray, r: int) -> np.ndarray:
    for _ in range(3):
        a = box_blur(a, r)
    return a


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a coarse random grid enlarged bicubically."""
    grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
    big = Image.fromarray(grid, "L").resize((shape[1], shape[0]), Image.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 255.0


# --- the photograph --------------------------------------------------------------------------------------------------


def background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    fine = rng.random((size, size)).astype(np.float32)
    if kind == "wood":
        warp = value_noise(rng, (size, size), 4)
        a = rng.uniform(0, math.pi)
        u = xx * math.cos(a) + yy * math.sin(a)
        rings = 0.5 + 0.5 * np.sin((u * rng.uniform(20, 50) + 6 * warp) * 2 * math.pi / 4)
        colour = np.array([0.45, 0.28, 0.14]) * rng.uniform(0.6, 1.3)
        img = colour * (0.7 + 0.3 * rings[..., None]) * (0.92 + 0.08 * fine[..., None])
    elif kind == "velvet":
        colour = np.array([[0.05, 0.06, 0.2], [0.25, 0.03, 0.07], [0.03, 0.15, 0.07], [0.04, 0.04, 0.04]])[
            int(rng.integers(0, 4))
        ]
        sheen = value_noise(rng, (size, size), 3)
        img = colour * (0.7 + 0.6 * sheen[..., None]) + 0.03 * fine[..., None]
    elif kind == "graph_paper":
        paper = np.array([0.93, 0.93, 0.88]) * rng.uniform(0.8, 1.05)
        step = size / rng.uniform(12, 30)
        ink = np.array([[0.35, 0.6, 0.8], [0.4, 0.7, 0.45], [0.85, 0.5, 0.45]])[int(rng.integers(0, 3))]
        gx, gy = (xx * size) % step, (yy * size) % step
        line = ((gx < 1.2) | (gy < 1.2)).astype(np.float32)
        major = (((xx * size) % (5 * step) < 2.2) | ((yy * size) % (5 * step) < 2.2)).astype(np.float32)
        ink_share = np.clip(0.6 * line + 0.4 * major, 0, 1)[..., None]
        img = paper * (1 - ink_share) + ink * ink_share + 0.02 * fine[..., None]
    elif kind == "linen":
        f = rng.uniform(60, 140)
        weave = 0.5 + 0.25 * (np.sin(xx * f * math.pi) + np.sin(yy * f * math.pi))
        colour = np.array([0.75, 0.7, 0.6]) * rng.uniform(0.6, 1.1)
        img = colour * (0.85 + 0.15 * weave[..., None]) * (0.9 + 0.1 * fine[..., None])
    elif kind == "marble":
        turb = value_noise(rng, (size, size), 6) + 0.5 * value_noise(rng, (size, size), 13)
        veins = np.abs(np.sin((xx + yy) * rng.uniform(3, 8) * math.pi + 5 * turb)) ** 0.3
        img = np.array([0.9, 0.9, 0.88]) * (0.6 + 0.4 * veins[..., None]) + 0.02 * fine[..., None]
    else:  # slate
        img = np.array([0.22, 0.23, 0.25]) * (0.8 + 0.4 * value_noise(rng, (size, size), 8)[..., None])
        img = img + 0.05 * fine[..., None]
    return np.clip(img, 0, 1).astype(np.float32)


def homography(D: int, d: float, turn: float, tilt: float, axis: float, focal: float, centre: tuple[float, float]):
    """3x3 map from face pixels (D x D face drawn for a coin d pixels across) to photo pixels: the coin plane turned
    in-plane, tilted about an axis through its centre, and seen through a pinhole ``focal`` pixels away."""
    s = d / D
    rz = np.array([[math.cos(turn), -math.sin(turn), 0], [math.sin(turn), math.cos(turn), 0], [0, 0, 1]])
    ca, sa = math.cos(axis), math.sin(axis)
    k = np.array([ca, sa, 0.0])  # Rodrigues: tilt about the in-plane axis k
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rt = np.eye(3) + math.sin(tilt) * kx + (1 - math.cos(tilt)) * kx @ kx
    r = rt @ rz
    to_plane = np.array([[s, 0, -s * D / 2], [0, s, -s * D / 2], [0, 0, 1]])
    ox, oy = centre
    project = np.array(
        [
            [focal * r[0, 0] + ox * r[2, 0], focal * r[0, 1] + ox * r[2, 1], focal * ox],
            [focal * r[1, 0] + oy * r[2, 0], focal * r[1, 1] + oy * r[2, 1], focal * oy],
            [r[2, 0], r[2, 1], focal],
        ]
    )
    return project @ to_plane


def apply_homography(hm: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ hm.T
    return p[:, :2] / p[:, 2:3]


def photograph(
    face: np.ndarray,
    alpha: np.ndarray,
    size: int,
    hm: np.ndarray,
    bg: np.ndarray,
    rng: np.random.Generator,
    light_az: float,
) -> Image.Image:
    inv = np.linalg.inv(hm)
    inv /= inv[2, 2]
    coeffs = tuple(inv.ravel()[:8])
    rgba = np.dstack([face, alpha[..., None]])
    layer = Image.fromarray((rgba * 255 + 0.5).astype(np.uint8), "RGBA")
    warped = (
        np.asarray(layer.transform((size, size), Image.PERSPECTIVE, coeffs, resample=Image.BICUBIC), dtype=np.float32)
        / 255.0
    )
    a = warped[..., 3:4]
    shift = int(size * rng.uniform(0.005, 0.03))
    shadow = np.roll(a[..., 0], (int(-shift * math.sin(light_az)), int(-shift * math.cos(light_az))), axis=(0, 1))
    shadow = smooth(shadow, max(1, size // 80)) * rng.uniform(0.3, 0.6)
    img = bg * (1 - shadow[..., None])
    img = img * (1 - a) + warped[..., :3] * a
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    g = rng.uniform(0, 2 * math.pi)
    img *= (1 + rng.uniform(0, 0.35) * (xx * math.cos(g) + yy * math.sin(g)))[..., None]
    img *= (1 - rng.uniform(0, 0.5) * (xx * xx + yy * yy))[..., None]
    img *= rng.uniform(0.85, 1.15) * (1 + rng.normal(0, 0.03, 3)).astype(np.float32)
    blur = int(rng.random() < 0.3)  # mild defocus on some photos; more made small dates illegible to a person
    if blur:
        img = np.dstack([smooth(img[..., ch], blur) for ch in range(3)])
    img += rng.normal(0, rng.uniform(0.004, 0.02), img.shape).astype(np.float32)
    return Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
