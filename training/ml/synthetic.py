"""Synthetic coin photographs for development, demos and tests.

Every coin is drawn from scratch with Pillow and NumPy: a height map (rim,
denticles, legend, portrait or motif, four date digits) is shaded like embossed
metal, aged, and then "photographed": rotated, scaled, slightly tilted, put on a
background with a shadow, lit unevenly, blurred, noised and saved as JPEG.

The minting year can be read off the coin (embossed digits) and the era also
shows in the design, varying smoothly with the year, so that a small CNN can
learn it from a few hundred coins:

* metal colour: deep red copper (1700) -> orange copper (~1780) -> bronze
  (~1820) -> dark bronze (~1860) -> silver (~1920) -> blue-grey cupro-nickel
  (~1955) -> nickel-brass (~1985) -> nordic gold (2025), interpolated linearly
  between those anchors, plus modest per-coin noise; ageing darkens it
  without changing its hue;
* rim: wider with time; denticles go from few large round beads (1700s) to
  many fine radial teeth (1900s) and fade to a plain wide rim (after ~1960);
* front motif: profile bust with a big curly wig (1700s) -> short hair and a
  laurel wreath (1800s) -> smaller, cleaner bust -> geometric motif
  (star, rays, polygons, leaf; becomes the norm from ~1930);
* back motif: wreath with crown -> crowned shield with branches -> modern
  numeral with geometric lines;
* legend: era-typical texts (Latin with V for U in the 1700s), font size,
  weight and arc span change continuously with the year;
* date: below the portrait on old coins, moving towards the bottom edge and
  onto the back for newer ones; digit size grows with the year;
* wear grows with age: softened relief, darkening and toning, dirt in the
  recesses, patina spots and scratches.

Everything is deterministic given the seed: the same seed gives byte-identical
JPEG files (with the same Pillow/libjpeg build).

Public API (see CONTRACT.md): :func:`generate_coin`, :func:`iter_coins`,
:func:`write_dataset`.  ``python -m training.ml.synthetic OUT_DIR --count N``
writes a dataset from the command line.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from tqdm import tqdm

from training.ml.years import YEAR_MAX, YEAR_MIN

__all__ = [
    "YEAR_MIN",
    "YEAR_MAX",
    "DEFAULT_SIZE",
    "LABELS_FILENAME",
    "generate_coin",
    "generate_coin_jpegs",
    "iter_coins",
    "write_dataset",
    "main",
]

DEFAULT_SIZE = 256
MIN_SIZE = 32
LABELS_FILENAME = "labels.csv"

# Coins are rendered at least this many pixels across, then downsized if the
# photo is small, so that text and denticles stay crisp.
MIN_RENDER = 150

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

_LEGENDS_OLD = (
    "GEORGIVS II DEI GRATIA",
    "LVDOVICVS XV D G FR ET NAV REX",
    "CAROLVS III D G HISP ET IND R",
    "FRIDERICVS BORVSSORVM REX",
    "MARIA THERESIA D G R IMP HV BO REG",
    "GEORGIVS III DEI GRATIA REX",
    "IOSEPHVS II D G ROM IMP S A",
)
_LEGENDS_MID = (
    "VICTORIA DEI GRATIA",
    "NAPOLEON EMPEREUR",
    "GEORGIUS IIII D G BRITANNIAR REX",
    "REPUBLIQUE FRANCAISE",
    "UNITED STATES OF AMERICA",
    "KONIGREICH BAYERN",
    "WILHELM DEUTSCHER KAISER",
    "VITT EMANUELE II RE D ITALIA",
)
_LEGENDS_NEW = (
    "LIBERTY",
    "ELIZABETH II D G REG F D",
    "EIRE",
    "HELVETIA",
    "DEUTSCHLAND",
    "CANADA",
    "REPUBBLICA ITALIANA",
    "EESTI",
    "SVERIGE",
    "NEDERLAND",
    "BELGIE BELGIQUE",
)
_BACK_LEGENDS_OLD = ("ONE PENNY", "HALF PENNY", "DEMI SOL", "XII KREUZER", "VIII REALES", "1 GROSCHEN")
_BACK_LEGENDS_MID = ("ONE PENNY", "FIVE CENTS", "10 CENTIMES", "HALF CROWN", "ONE DIME", "5 PFENNIG")
_BACK_LEGENDS_NEW = ("EURO CENT", "ONE DOLLAR", "FRANCS", "KRONA", "TWO POUNDS", "CENTS", "ZLOTY")
_DENOMS_OLD = ("I", "II", "XII", "VI", "1/2", "1")
_DENOMS_NEW = ("1", "2", "5", "10", "20", "50", "100")


def _era(year: float) -> float:
    """0 at 1700, 1 at 2025 (clipped)."""
    return float(np.clip((year - YEAR_MIN) / (YEAR_MAX - YEAR_MIN), 0.0, 1.0))


def _smoothstep(a: float, b: float, x: float) -> float:
    s = min(max((x - a) / (b - a), 0.0), 1.0)
    return s * s * (3.0 - 2.0 * s)


def metal_colour(year: float) -> np.ndarray:
    return np.array([np.interp(year, _ANCHOR_YEARS, _ANCHOR_RGB[:, k]) for k in range(3)])


def _copperness(year: float) -> float:
    return float(np.interp(year, _ANCHOR_YEARS, _ANCHOR_COPPER))


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def coin_font(px: int) -> ImageFont.FreeTypeFont:
    # Pillow's bundled font (Aileron); the only font sure to exist everywhere.
    return ImageFont.load_default(size=max(4, int(px)))


@lru_cache(maxsize=16)
def _polar(d: int) -> tuple[np.ndarray, np.ndarray]:
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


def _pts(cx: float, cy: float, scale: float, flip: float, pts: Sequence[tuple[float, float]]):
    """Map unit motif coordinates to pixels (flip = +1/-1 mirrors the motif)."""
    return [(cx + flip * u * scale, cy + v * scale) for u, v in pts]


def _ellipse_poly(cx, cy, a, b, angle, n=10):
    ca, sa = math.cos(angle), math.sin(angle)
    out = []
    for i in range(n):
        t = 2 * math.pi * i / n
        x, y = a * math.cos(t), b * math.sin(t)
        out.append((cx + x * ca - y * sa, cy + x * sa + y * ca))
    return out


def _text_strip(text: str, px: int, stroke: int) -> np.ndarray:
    """Text rendered as a float height strip (rows = letter height)."""
    font = coin_font(px)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    w, h = max(1, right - left + 2), max(1, bottom - top + 2)
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).text((1 - left, 1 - top), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    return np.asarray(img, dtype=np.float32) / 255.0


def _sample_bilinear(src: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
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


# --------------------------------------------------------------------------
# the coin's design (shared by both faces)
# --------------------------------------------------------------------------


class CoinSpec:
    """All per-coin design parameters, drawn once from the coin's RNG."""

    def __init__(self, year: int, rng: np.random.Generator, style: str = "classic"):
        t = _era(year)
        self.style = style
        self.year = year
        self.t = t
        colour = metal_colour(year) * (1.0 + rng.normal(0, 0.02, 3)) * (1.0 + rng.normal(0, 0.04))
        if style == "northern":  # other alloys: the channels rotated (teal, violet, olive instead of copper/silver)
            colour = colour[[2, 0, 1]] * np.array([0.9, 1.0, 1.1])
        self.metal = np.clip(colour, 0.05, 1.0)
        self.copper = _copperness(year)
        age = (YEAR_MAX - year) / (YEAR_MAX - YEAR_MIN)
        self.wear = float(np.clip(max(age, 0.0) ** 0.85 * rng.uniform(0.7, 1.2) + rng.normal(0, 0.03), 0.0, 1.0))
        self.rim_w = 0.035 + 0.055 * t + rng.normal(0, 0.006)
        self.n_beads = int(round(40 + 90 * t + rng.normal(0, 3)))
        self.toothness = _smoothstep(0.25, 0.65, t + rng.normal(0, 0.03))
        self.dentil_h = 1.0 - _smoothstep(0.78, 0.97, t + rng.normal(0, 0.02))
        self.bead_r = 0.030 - 0.012 * t
        self.flip = 1.0 if rng.random() < 0.5 else -1.0
        # style probabilities vary smoothly; the draw is per coin
        p_geo = _smoothstep(0.5, 0.8, t)
        self.front_geo = rng.random() < p_geo
        w_wreath = 1.0 - _smoothstep(0.22, 0.5, t)
        w_shield = _smoothstep(0.15, 0.38, t) * (1.0 - _smoothstep(0.55, 0.78, t))
        w_modern = _smoothstep(0.5, 0.78, t)
        w = np.array([w_wreath, w_shield, w_modern]) + 1e-3
        self.back_style = ("wreath", "shield", "modern")[int(rng.choice(3, p=w / w.sum()))]
        self.year_on_back = rng.random() < _smoothstep(0.55, 0.75, t)
        tb = t + rng.normal(0, 0.06)
        if tb < 0.3:
            pool, bpool = _LEGENDS_OLD, _BACK_LEGENDS_OLD
        elif tb < 0.62:
            pool, bpool = _LEGENDS_MID, _BACK_LEGENDS_MID
        else:
            pool, bpool = _LEGENDS_NEW, _BACK_LEGENDS_NEW
        self.legend = pool[int(rng.integers(len(pool)))]
        self.back_legend = bpool[int(rng.integers(len(bpool)))]
        dpool = _DENOMS_OLD if tb < 0.45 else _DENOMS_NEW
        self.denom = dpool[int(rng.integers(len(dpool)))]
        self.legend_px = 0.105 + 0.035 * t + rng.normal(0, 0.005)  # fraction of radius
        self.legend_span = math.radians(300 - 150 * t + rng.normal(0, 10))
        self.legend_stroke = t > 0.55
        self.digit_px = 0.24 + 0.08 * t + rng.normal(0, 0.01)
        self.digit_y = 0.50 + 0.16 * t + rng.normal(0, 0.015)  # centre, fraction of radius below centre
        self.geo_kind = int(rng.integers(4))
        self.geo_n = int(round(5 + 9 * t + rng.normal(0, 1)))
        self.shield_kind = int(rng.integers(3))
        self.modern_kind = int(rng.integers(3))
        self.mint = "ABDFGHJMPSW"[int(rng.integers(11))] if rng.random() < 0.5 else ""
        if style == "assorted":
            self._assorted(rng)

    def _assorted(self, rng: np.random.Generator) -> None:
        """The pretraining-only style: any alloy, the date anywhere, in the Aileron font or a pen-drawn hand.

        Drawn after the classic parameters, so that a classic coin's draws stay what they were.
        """
        self.metal = np.clip(self.metal[rng.permutation(3)] * rng.uniform(0.8, 1.2, 3), 0.05, 1.0)
        self.year_on_back = rng.random() < 0.5
        self.date_pen = rng.random() < 0.6  # else the Aileron font
        self.date_height = rng.uniform(0.15, 0.28)  # of the radius
        self.date_angle = rng.uniform(0, 2 * math.pi)
        self.date_radius = rng.uniform(0.0, 1.0)  # share of the room the date leaves inside the rim
        self.date_plaque = rng.random() < 0.5
        self.date_shear = rng.uniform(-0.25, 0.25)
        self.date_aspect = rng.uniform(0.45, 0.75)  # digit width / height
        self.date_pen_width = rng.uniform(0.08, 0.2)  # of the digit height


# --------------------------------------------------------------------------
# height map drawing
# --------------------------------------------------------------------------


def draw_rim(d: ImageDraw.ImageDraw, c: float, R: float, s: CoinSpec) -> float:
    """Raised rim and denticles; returns the radius inside the denticles."""
    inner = R * (1.0 - s.rim_w)
    d.ellipse((c - R, c - R, c + R, c + R), fill=215)
    d.ellipse((c - inner, c - inner, c + inner, c + inner), fill=0)
    if s.dentil_h > 0.02:
        br = R * s.bead_r
        a = br * (1.0 + 1.4 * s.toothness)  # radial half-length
        b = br * (1.0 - 0.45 * s.toothness)  # tangential half-width
        rb = inner - a * 0.9
        val = int(40 + 170 * s.dentil_h)
        for k in range(s.n_beads):
            ang = 2 * math.pi * k / s.n_beads
            x, y = c + rb * math.cos(ang), c + rb * math.sin(ang)
            d.polygon(_ellipse_poly(x, y, a, b, ang, 8), fill=val)
        return rb - a - R * 0.015
    return inner - R * 0.02


def _legend(h: np.ndarray, text: str, r_out: float, px: float, span: float, centre: float, top: bool, stroke: bool):
    """Add curved text between r_out - letter height and r_out (in place, max)."""
    if not text or px < 4:
        return
    strip = _text_strip(text, int(round(px)), 1 if (stroke and px >= 14) else 0)
    sh, sw = strip.shape
    r_in = r_out - sh
    r_mid = 0.5 * (r_in + r_out)
    natural = sw / max(r_mid, 1.0)  # span at 1:1 letter width
    span = float(np.clip(span, natural * 0.8, min(natural * 1.5, math.radians(330))))
    d = h.shape[0]
    r, phi = _polar(d)
    dphi = np.mod(phi - centre + math.pi, 2 * math.pi) - math.pi
    m = (r >= r_in) & (r <= r_out) & (np.abs(dphi) <= span / 2)
    if not m.any():
        return
    rr, dp = r[m], dphi[m]
    if top:
        x = (dp + span / 2) / span * sw
        y = (r_out - rr) / (r_out - r_in) * sh
    else:
        x = (span / 2 - dp) / span * sw
        y = (rr - r_in) / (r_out - r_in) * sh
    vals = _sample_bilinear(strip, x - 0.5, y - 0.5) * 0.85
    h[m] = np.maximum(h[m], vals)


def draw_text(d: ImageDraw.ImageDraw, x: float, y: float, text: str, px: float, fill: int = 240):
    px = int(round(px))
    if px < 4:
        return
    stroke = 1 if px >= 16 else 0
    d.text((x, y), text, font=coin_font(px), fill=fill, anchor="mm", stroke_width=stroke, stroke_fill=fill)


def _draw_bust(d: ImageDraw.ImageDraw, c: float, R: float, s: CoinSpec, rng: np.random.Generator):
    t = s.t
    M = R * (0.68 - 0.16 * t)
    cx = c + rng.normal(0, 0.01) * R
    cy = c - R * (0.12 + 0.04 * t)
    f = s.flip
    P = lambda pts: _pts(cx, cy, M, f, pts)  # noqa: E731
    wig = 1.0 - _smoothstep(0.12, 0.42, t)
    laurel = _smoothstep(0.2, 0.35, t) * (1.0 - _smoothstep(0.55, 0.75, t))
    # shoulders with drapery / armour
    d.polygon(P([(-0.85, 0.62), (0.62, 0.62), (0.52, 0.36), (0.18, 0.2), (-0.4, 0.16), (-0.8, 0.38)]), fill=130)
    for k in range(4):
        u = -0.6 + 0.3 * k
        d.line(P([(u, 0.6), (u + 0.18, 0.25)]), fill=165, width=max(1, int(M * 0.04)))
    # neck
    d.polygon(P([(-0.12, -0.08), (0.24, -0.08), (0.28, 0.26), (-0.2, 0.3)]), fill=160)
    # head
    d.ellipse(_bbox(P([(0.04, -0.4)])[0], M * 0.34, M * 0.40), fill=185)
    # nose, lips, chin
    d.polygon(P([(0.34, -0.46), (0.5, -0.3), (0.36, -0.27)]), fill=190)
    d.ellipse(_bbox(P([(0.3, -0.14)])[0], M * 0.1, M * 0.09), fill=182)
    # eye and ear
    d.ellipse(_bbox(P([(0.22, -0.44)])[0], M * 0.045, M * 0.03), fill=140)
    ex, ey = P([(-0.02, -0.36)])[0]
    d.ellipse(_bbox((ex, ey), M * 0.07, M * 0.1), fill=215)
    d.ellipse(_bbox((ex, ey), M * 0.035, M * 0.06), fill=170)
    if wig > 0.05:
        # long curly wig: curls down the back of the head to the shoulders
        n = int(round(3 + 9 * wig))
        for k in range(n):
            v = -0.72 + 1.05 * k / max(n - 1, 1)
            u = -0.25 - 0.18 * math.sin(math.pi * (k + 0.5) / n) - 0.08 * (k % 2)
            rad = M * (0.09 + 0.04 * wig)
            x, y = P([(u, v)])[0]
            d.ellipse(_bbox((x, y), rad, rad), fill=228)
            d.ellipse(_bbox((x, y), rad * 0.45, rad * 0.45), fill=190)
        # ribbon tie
        x, y = P([(-0.32, -0.05)])[0]
        d.line([(x, y), (x - f * M * 0.25, y + M * 0.25)], fill=235, width=max(1, int(M * 0.05)))
    # short hair strands on top of the head
    for k in range(7):
        a0 = math.pi * (1.05 + 0.12 * k)
        hx, hy = P([(0.04, -0.4)])[0]
        x0 = hx + f * M * 0.3 * math.cos(a0)
        y0 = hy + M * 0.36 * math.sin(a0)
        d.line([(x0, y0), (x0 + f * M * 0.12, y0 + M * 0.08)], fill=215, width=max(1, int(M * 0.03)))
    if laurel > 0.05:
        # laurel wreath across the head
        hx, hy = P([(0.04, -0.4)])[0]
        nl = 7
        for k in range(nl):
            a0 = math.pi * (0.9 + 0.75 * k / (nl - 1))
            x = hx + f * M * 0.3 * math.cos(a0)
            y = hy + M * 0.3 * math.sin(a0) + M * 0.05
            ang = a0 + math.pi / 2 if f > 0 else math.pi - a0 - math.pi / 2
            d.polygon(_ellipse_poly(x, y, M * 0.1, M * 0.04, ang, 8), fill=int(160 + 80 * laurel))


def _bbox(xy, rx, ry):
    x, y = xy
    return (x - rx, y - ry, x + rx, y + ry)


def _draw_geo_front(d: ImageDraw.ImageDraw, c: float, R: float, s: CoinSpec, rng: np.random.Generator):
    t = s.t
    M = R * (0.46 - 0.06 * t)
    cx, cy = c, c - R * 0.1
    n = max(3, s.geo_n)
    rot = rng.uniform(0, 2 * math.pi)
    kind = s.geo_kind
    if kind == 0:  # star
        pts = []
        for k in range(2 * n):
            rad = M if k % 2 == 0 else M * 0.45
            a = rot + math.pi * k / n
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        d.polygon(pts, fill=200)
        d.ellipse(_bbox((cx, cy), M * 0.22, M * 0.22), fill=240)
    elif kind == 1:  # rays / sunburst
        d.ellipse(_bbox((cx, cy), M * 0.35, M * 0.35), fill=225)
        for k in range(2 * n):
            a = rot + math.pi * k / n
            d.line(
                [
                    (cx + M * 0.45 * math.cos(a), cy + M * 0.45 * math.sin(a)),
                    (cx + M * math.cos(a), cy + M * math.sin(a)),
                ],
                fill=200,
                width=max(1, int(M * 0.07)),
            )
    elif kind == 2:  # nested polygons
        sides = 3 + n % 6
        for rad, val in ((1.0, 170), (0.72, 0), (0.55, 210), (0.3, 0), (0.18, 240)):
            pts = [
                (
                    cx + M * rad * math.cos(rot + 2 * math.pi * k / sides),
                    cy + M * rad * math.sin(rot + 2 * math.pi * k / sides),
                )
                for k in range(sides)
            ]
            d.polygon(pts, fill=val)
    else:  # stylised leaf / branch
        ang = -math.pi / 2 + rng.normal(0, 0.3)
        for k in range(n):
            fr = (k + 1) / (n + 1)
            x = cx + (fr - 0.5) * 1.6 * M * math.cos(ang)
            y = cy + (fr - 0.5) * 1.6 * M * math.sin(ang)
            for side in (-1, 1):
                la = ang + side * 0.9
                d.polygon(
                    _ellipse_poly(x + M * 0.22 * math.cos(la), y + M * 0.22 * math.sin(la), M * 0.24, M * 0.08, la, 8),
                    fill=205,
                )
        d.line(
            [
                (cx - 0.85 * M * math.cos(ang), cy - 0.85 * M * math.sin(ang)),
                (cx + 0.85 * M * math.cos(ang), cy + 0.85 * M * math.sin(ang)),
            ],
            fill=235,
            width=max(1, int(M * 0.06)),
        )


def _draw_crown(d: ImageDraw.ImageDraw, cx: float, cy: float, w: float):
    d.polygon(
        [
            (cx - w, cy + w * 0.45),
            (cx - w * 1.05, cy - w * 0.3),
            (cx - w * 0.5, cy + w * 0.05),
            (cx, cy - w * 0.55),
            (cx + w * 0.5, cy + w * 0.05),
            (cx + w * 1.05, cy - w * 0.3),
            (cx + w, cy + w * 0.45),
        ],
        fill=205,
    )
    for x in (-1.05, 0.0, 1.05):
        d.ellipse(_bbox((cx + x * w, cy - w * (0.55 if x == 0 else 0.3) - w * 0.1), w * 0.13, w * 0.13), fill=240)
    d.rectangle((cx - w, cy + w * 0.35, cx + w, cy + w * 0.55), fill=230)


def _draw_branch(d: ImageDraw.ImageDraw, c: float, rad: float, a0: float, a1: float, n: int, leaf: float, val: int):
    """Leaves along an arc from angle a0 to a1 (radians, image coordinates)."""
    pts = []
    for k in range(n + 1):
        a = a0 + (a1 - a0) * k / n
        pts.append((c + rad * math.cos(a), c + rad * math.sin(a)))
    d.line(pts, fill=val - 30, width=max(1, int(leaf * 0.35)))
    for k in range(n):
        a = a0 + (a1 - a0) * (k + 0.5) / n
        x, y = c + rad * math.cos(a), c + rad * math.sin(a)
        tang = a + (math.pi / 2 if a1 > a0 else -math.pi / 2)
        for side in (-1, 1):
            la = tang + side * 0.6
            d.polygon(
                _ellipse_poly(x + leaf * 0.8 * math.cos(la), y + leaf * 0.8 * math.sin(la), leaf, leaf * 0.4, la, 8),
                fill=val,
            )


def _draw_back(d: ImageDraw.ImageDraw, c: float, R: float, r_in: float, s: CoinSpec, rng: np.random.Generator):
    t = s.t
    style = s.back_style
    if style == "wreath":
        rad = r_in * 0.78
        n = int(round(11 - 5 * t))
        leaf = R * (0.085 - 0.02 * t)
        _draw_branch(d, c, rad, math.radians(100), math.radians(215), n, leaf, 200)
        _draw_branch(d, c, rad, math.radians(80), math.radians(-35), n, leaf, 200)
        _draw_crown(d, c, c - R * 0.38, R * 0.16)
        draw_text(d, c, c + R * 0.02, s.denom, R * 0.34)
    elif style == "shield":
        w, h = R * 0.36, R * 0.46
        top = c - R * 0.22
        pts = [(c - w, top), (c + w, top), (c + w, top + h * 0.55), (c, top + h), (c - w, top + h * 0.55)]
        d.polygon(pts, fill=185)
        inner = [(c + (x - c) * 0.82, top + (y - top) * 0.86 + h * 0.06) for x, y in pts]
        d.polygon(inner, fill=150)
        if s.shield_kind == 0:  # horizontal bands
            for k in range(5):
                y0 = top + h * (0.12 + 0.14 * k)
                d.rectangle((c - w * 0.7, y0, c + w * 0.7, y0 + h * 0.06), fill=210)
        elif s.shield_kind == 1:  # quartered
            d.line([(c, top + h * 0.08), (c, top + h * 0.92)], fill=215, width=max(1, int(R * 0.03)))
            d.line([(c - w * 0.8, top + h * 0.4), (c + w * 0.8, top + h * 0.4)], fill=215, width=max(1, int(R * 0.03)))
        else:  # chevron and dots
            d.line(
                [(c - w * 0.7, top + h * 0.65), (c, top + h * 0.2), (c + w * 0.7, top + h * 0.65)],
                fill=215,
                width=max(1, int(R * 0.05)),
            )
            for x in (-0.45, 0.45):
                d.ellipse(_bbox((c + x * w, top + h * 0.2), R * 0.035, R * 0.035), fill=225)
        _draw_crown(d, c, top - R * 0.1, R * 0.15)
        n = int(round(9 - 3 * t))
        gap = 35 if s.year_on_back else 10  # leave the bottom free for the date
        _draw_branch(d, c, r_in * 0.8, math.radians(90 + gap), math.radians(175), n, R * 0.06, 195)
        _draw_branch(d, c, r_in * 0.8, math.radians(90 - gap), math.radians(5), n, R * 0.06, 195)
    else:  # modern: big numeral plus geometric lines
        kind = s.modern_kind
        if kind == 0:
            for k in range(9):
                y = c - R * 0.55 + k * R * 0.09
                half = math.sqrt(max(r_in**2 - (y - c) ** 2, 0)) * 0.8
                d.line([(c + R * 0.05, y), (c + half, y)], fill=190, width=max(1, int(R * 0.025)))
        elif kind == 1:
            for k in range(3):
                rr = R * (0.3 + 0.13 * k)
                d.arc(_bbox((c, c - R * 0.05), rr, rr), 200, 340, fill=200, width=max(1, int(R * 0.03)))
        else:
            n = max(3, s.geo_n)
            for k in range(n):  # ring of dots, open at the bottom where the date goes
                a = math.radians(-225 + 270 * k / (n - 1))
                d.ellipse(_bbox((c + R * 0.52 * math.cos(a), c + R * 0.52 * math.sin(a)), R * 0.05, R * 0.05), fill=220)
        dx = -0.12 if kind == 0 else 0.0
        draw_text(d, c + R * dx, c - R * 0.05, s.denom, R * (0.38 + 0.1 * t), fill=235)


# Seven-segment digits of the "northern" mint: other digit shapes than the Aileron font of the classic coins.
_SEGMENTS = {  # a b c d e f g
    "0": "abcdef",
    "1": "bc",
    "2": "abged",
    "3": "abgcd",
    "4": "fgbc",
    "5": "afgcd",
    "6": "afgedc",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}
_SEGMENT_BOXES = {  # x0, y0, x1, y1 in a 0.6 x 1 digit cell
    "a": (0.08, 0.0, 0.52, 0.1),
    "g": (0.08, 0.45, 0.52, 0.55),
    "d": (0.08, 0.9, 0.52, 1.0),
    "f": (0.0, 0.05, 0.1, 0.5),
    "b": (0.5, 0.05, 0.6, 0.5),
    "e": (0.0, 0.5, 0.1, 0.95),
    "c": (0.5, 0.5, 0.6, 0.95),
}


def _draw_segment_date(d: ImageDraw.ImageDraw, c: float, R: float, r_in: float, s: CoinSpec) -> tuple[float, float]:
    """Draw the year in seven-segment digits above the centre (the northern mint's date); returns its centre."""
    height = R * (0.17 + 0.04 * s.t)
    width = 0.6 * height
    gap = 0.22 * height
    total = 4 * width + 3 * gap
    y = c - r_in * 0.78 + height / 2  # along the top, where the classic coins have their legend
    d.rectangle((c - total / 2 - gap, y - height / 2 - gap, c + total / 2 + gap, y + height / 2 + gap), fill=0)
    x0 = c - total / 2
    for k, digit in enumerate(f"{s.year:04d}"):
        left = x0 + k * (width + gap)
        for segment in _SEGMENTS[digit]:
            a, b, e, f = _SEGMENT_BOXES[segment]
            d.rectangle(
                (left + a * height, y - height / 2 + b * height, left + e * height, y - height / 2 + f * height),
                fill=245,
            )
    return c, y


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 14) -> list[tuple[float, float]]:
    """Points of an elliptic arc in a digit cell (y down), from a0 to a1 degrees."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a))) for a in np.linspace(a0, a1, n)]


def _turned(strokes: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
    return [[(1.0 - x, 1.0 - y) for x, y in stroke] for stroke in strokes]


# Pen-drawn digits of the pretraining-only "assorted" style: strokes in a unit cell (x right, y down), so that the
# base reader learns digits as shapes rather than one font's pixels.
_SIX = [_arc(0.55, 0.52, 0.42, 0.5, 290, 150), _arc(0.5, 0.7, 0.38, 0.3, 0, 360)]
_PEN_DIGITS: dict[str, list[list[tuple[float, float]]]] = {
    "0": [_arc(0.5, 0.5, 0.42, 0.5, 0, 360, 20)],
    "1": [[(0.2, 0.22), (0.55, 0.0), (0.55, 1.0)]],
    "2": [_arc(0.5, 0.28, 0.4, 0.28, 195, 385) + [(0.06, 1.0), (0.95, 1.0)]],
    "3": [_arc(0.5, 0.26, 0.36, 0.26, 200, 450), _arc(0.5, 0.74, 0.42, 0.26, 270, 520)],
    "4": [[(0.72, 1.0), (0.72, 0.0), (0.04, 0.7), (0.96, 0.7)]],
    "5": [[(0.88, 0.0), (0.2, 0.0), (0.14, 0.45)] + _arc(0.5, 0.68, 0.4, 0.32, 225, 505)],
    "6": _SIX,
    "7": [[(0.04, 0.0), (0.96, 0.0), (0.38, 1.0)]],
    "8": [_arc(0.5, 0.25, 0.33, 0.25, 0, 360), _arc(0.5, 0.73, 0.42, 0.27, 0, 360)],
    "9": _turned(_SIX),
}


def _draw_assorted_date(d: ImageDraw.ImageDraw, c: float, r_in: float, s: CoinSpec) -> tuple[float, float]:
    """Draw the year anywhere inside the rim (pen-drawn or Aileron, sometimes on a dark plaque); returns its centre."""
    height = r_in * s.date_height
    width = height * s.date_aspect
    gap = 0.18 * height
    total = 4 * width + 3 * gap
    half_diag = math.hypot(total / 2 + gap, height / 2 + gap)
    room = max(0.8 * r_in - half_diag, 0.0)  # clear of the legend along the rim
    x = c + room * s.date_radius * math.cos(s.date_angle)
    y = c + room * s.date_radius * math.sin(s.date_angle)
    if s.date_plaque:
        d.rectangle((x - total / 2 - gap, y - height / 2 - gap, x + total / 2 + gap, y + height / 2 + gap), fill=0)
    if not s.date_pen:
        draw_text(d, x, y, f"{s.year:04d}", height * 1.3, fill=245)
        return x, y
    pen = max(1, int(round(height * s.date_pen_width)))
    for k, digit in enumerate(f"{s.year:04d}"):
        left = x - total / 2 + k * (width + gap)
        top = y - height / 2
        for stroke in _PEN_DIGITS[digit]:
            points = [(left + (px + s.date_shear * (0.5 - py)) * width, top + py * height) for px, py in stroke]
            d.line(points, fill=245, width=pen, joint="curve")
            for px, py in (points[0], points[-1]):
                d.ellipse((px - pen / 2, py - pen / 2, px + pen / 2, py + pen / 2), fill=245)
    return x, y


def _height_map(s: CoinSpec, side: str, D: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float] | None]:
    """The face's relief in [0, 1], and where its date's centre is (pixels of the face), or None without a date."""
    c = D / 2.0
    date_xy = None
    R = D / 2.0 - 0.5
    img = Image.new("L", (D, D), 0)
    d = ImageDraw.Draw(img)
    r_in = draw_rim(d, c, R, s)
    t = s.t
    year_here = (side == "back") == s.year_on_back
    if side == "front":
        if s.front_geo:
            _draw_geo_front(d, c, R, s, rng)
        else:
            _draw_bust(d, c, R, s, rng)
    else:
        _draw_back(d, c, R, r_in, s, rng)
    if year_here and s.style == "northern":
        date_xy = _draw_segment_date(d, c, R, r_in, s)
    elif year_here and s.style == "assorted":
        date_xy = _draw_assorted_date(d, c, r_in, s)
    elif year_here:
        digits = f"{s.year:04d}"
        if side == "front":
            y = c + R * s.digit_y
            px = R * s.digit_px
        else:
            y = c + R * (0.62 + 0.04 * t)
            px = R * (s.digit_px + 0.02)
        # keep the whole date inside the denticles
        ipx = int(round(px))
        left, _, right, bottom = coin_font(ipx).getbbox(digits, anchor="mm", stroke_width=1 if ipx >= 16 else 0)
        half_w = max(-left, right)
        limit = 0.95 * r_in
        y = min(y, c + math.sqrt(max(limit**2 - half_w**2, 0.0)) - bottom)
        draw_text(d, c, y, digits, px, fill=245)
        date_xy = (c, y)
        if s.mint:
            mx = c + half_w + 0.4 * px
            if math.hypot(mx - c + 0.25 * px, y - c + 0.3 * px) < limit:
                draw_text(d, mx, y, s.mint, px * 0.55, fill=230)
    h = np.asarray(img, dtype=np.float32) / 255.0
    h = np.array(h)  # writable
    lp = R * s.legend_px
    if s.style == "northern":
        text = s.legend if side == "front" else s.back_legend
        _legend(h, text, r_in, lp, math.radians(120), math.pi / 2, False, s.legend_stroke)
    elif side == "front":
        _legend(h, s.legend, r_in, lp, s.legend_span, -math.pi / 2, True, s.legend_stroke)
    else:
        if s.back_style == "modern":
            _legend(h, s.back_legend, r_in, lp, math.radians(130), -math.pi / 2, True, s.legend_stroke)
        elif s.back_style == "wreath":  # over the crown, between the ends of the branches
            _legend(h, s.back_legend, r_in, lp, math.radians(90), -math.pi / 2, True, s.legend_stroke)
        elif year_here:  # shield with the date at the bottom: legend on top
            _legend(h, s.back_legend, r_in, lp, math.radians(120), -math.pi / 2, True, s.legend_stroke)
        else:  # shield: legend along the bottom, under the branches
            _legend(h, s.back_legend, r_in, lp, math.radians(120), math.pi / 2, False, s.legend_stroke)
    return h, date_xy


# --------------------------------------------------------------------------
# shading: height map -> aged metal
# --------------------------------------------------------------------------


def shade_relief(h: np.ndarray, s: CoinSpec, rng: np.random.Generator) -> Image.Image:
    D = h.shape[0]
    unit = D / 200.0
    wear = s.wear
    hb = gaussian_blur(h, unit * (0.7 + 1.1 * wear))
    gy, gx = np.gradient(hb)
    la = rng.uniform(-2.6, -1.6)  # light from upper left-ish
    lx, ly = math.cos(la), math.sin(la)
    relief = 1.0 - 0.45 * wear
    shade = (gx * lx + gy * ly) * (6.5 * unit) * relief
    r, phi = _polar(D)
    R = D / 2.0 - 0.5
    rn = r / R
    base = s.metal.astype(np.float32)
    # lustre: cartwheel brightness variation on fresh coins, plus a dish shading
    lustre = 1.0 + (0.10 * (1.0 - wear)) * np.cos(2 * (phi - rng.uniform(0, math.pi))) - 0.06 * rn**2
    albedo = (0.80 + 0.22 * hb) * lustre
    diffuse = np.clip(1.0 + shade, 0.3, 1.9)
    spec = np.clip(shade, 0, None) ** 2 * (0.9 * (1.0 - 0.7 * wear))
    # grainy metal surface
    grain = rng.normal(0, 0.025 + 0.04 * wear, (D, D)).astype(np.float32)
    grain = gaussian_blur(grain, 0.6 * unit)
    lum = albedo * diffuse + grain
    rgb = lum[..., None] * base[None, None, :] + spec[..., None] * (0.6 + 0.4 * base[None, None, :])
    # toning / darkening with age, dirt in recesses near the relief
    # (toning keeps the alloy's hue: it darkens and slightly greys the metal)
    tone = 0.45 * (0.8 * base + 0.2 * base.mean())
    dark = 0.45 * wear
    rgb = rgb * (1.0 - dark) + tone[None, None, :] * dark * lum[..., None]
    dirt = np.clip(gaussian_blur(h, 3.0 * unit) - hb, 0, None) * (1.3 * wear)
    rgb *= (1.0 - np.clip(dirt, 0, 0.6))[..., None]
    # patina spots
    n_spots = int(rng.poisson(0.5 + 7 * wear**1.5))
    if n_spots:
        spot = Image.new("L", (D, D), 0)
        sd = ImageDraw.Draw(spot)
        for _ in range(n_spots):
            x, y = rng.uniform(0.15, 0.85, 2) * D
            rx, ry = rng.uniform(0.01, 0.055, 2) * D
            sd.ellipse((x - rx, y - ry, x + rx, y + ry), fill=int(rng.uniform(90, 220)))
        sm = gaussian_blur(np.asarray(spot, dtype=np.float32) / 255.0, 1.5 * unit)
        pc = np.array([0.22, 0.36, 0.28] if s.copper > 0.5 else [0.16, 0.15, 0.14], dtype=np.float32)
        sm = sm[..., None] * (0.4 + 0.5 * wear)
        rgb = rgb * (1 - sm) + pc[None, None, :].astype(np.float32) * sm
    # scratches
    n_scr = int(rng.poisson(0.5 + 12 * wear))
    if n_scr:
        scr = Image.new("L", (D, D), 0)
        sd = ImageDraw.Draw(scr)
        for _ in range(n_scr):
            x0, y0 = rng.uniform(0.1, 0.9, 2) * D
            ang = rng.uniform(0, math.pi)
            ln = rng.uniform(0.05, 0.45) * D
            x1, y1 = x0 + ln * math.cos(ang), y0 + ln * math.sin(ang)
            sd.line([(x0, y0), (x1, y1)], fill=int(rng.uniform(60, 200)), width=1)
        sm = np.asarray(scr, dtype=np.float32)[..., None] / 255.0
        rgb = rgb + sm * 0.22 * (0.5 + 0.5 * base[None, None, :])
    # bevelled edge
    edge = np.clip((rn - 0.965) / 0.035, 0, 1)
    rgb *= (1.0 - 0.35 * edge)[..., None]
    alpha = np.clip(R - r + 0.5, 0.0, 1.0)
    out = np.empty((D, D, 4), dtype=np.uint8)
    out[..., :3] = np.clip(rgb * 255.0, 0, 255).astype(np.uint8)
    out[..., 3] = (alpha * 255).astype(np.uint8)
    return Image.fromarray(out, "RGBA")


# --------------------------------------------------------------------------
# photography: background, placement, lighting, camera
# --------------------------------------------------------------------------


def _bg_colour(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Random surface colour, mostly muted (tables, cloth, paper are rarely vivid)."""
    col = rng.uniform(lo, hi, 3)
    g = col.mean()
    sat = rng.uniform(0.0, 0.35) if rng.random() < 0.8 else rng.uniform(0.35, 0.8)
    return (g + (col - g) * sat).astype(np.float32)


def table_background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = int(rng.integers(4))
    shape = (size, size)
    unit = size / 256.0
    yy, xx, _ = _grid(size)
    yy, xx = yy * size, xx * size
    if kind == 0:  # plain surface (paper, table, felt)
        col = _bg_colour(rng, 0.12, 0.95)
        var = (lowfreq_noise(rng, shape, 4) - 0.5) * 0.12
        img = col[None, None, :] * (1.0 + var[..., None])
    elif kind == 1:  # cloth: weave plus fuzz
        col = _bg_colour(rng, 0.1, 0.85)
        f = rng.uniform(0.9, 2.2) / unit
        ang = rng.uniform(0, math.pi)
        u = xx * math.cos(ang) + yy * math.sin(ang)
        v = -xx * math.sin(ang) + yy * math.cos(ang)
        weave = 0.5 + 0.25 * np.sin(u * f) * np.sin(v * f) + 0.25 * np.sin(u * f * 0.5)
        fuzz = gaussian_blur(rng.standard_normal(shape, dtype=np.float32), 0.8 * unit) * 0.06
        var = (lowfreq_noise(rng, shape, 5) - 0.5) * 0.25
        img = col[None, None, :] * (0.85 + 0.15 * weave + fuzz + var)[..., None]
    elif kind == 2:  # wood: stripes bent by low-frequency noise
        light = np.array([0.72, 0.52, 0.32])
        light = ((light.mean() + (light - light.mean()) * rng.uniform(0.2, 0.8)) * rng.uniform(0.6, 1.25)).astype(
            np.float32
        )
        darkc = light * rng.uniform(0.45, 0.7)
        ang = rng.uniform(0, math.pi)
        u = xx * math.cos(ang) + yy * math.sin(ang)
        v = -xx * math.sin(ang) + yy * math.cos(ang)
        bend = lowfreq_noise(rng, shape, 3) * (rng.uniform(15, 45) * unit)
        freq = rng.uniform(0.05, 0.16) / unit
        st = 0.5 + 0.5 * np.sin((v + bend) * freq + 0.3 * np.sin(u * (0.02 / unit)))
        st = st ** rng.uniform(1.5, 4.0)
        fine = gaussian_blur(rng.standard_normal(shape, dtype=np.float32), 0.7 * unit) * 0.04
        img = light[None, None, :] * (1 - st[..., None]) + darkc[None, None, :] * st[..., None]
        img = img * (1.0 + fine[..., None])
        if rng.random() < 0.5:  # plank seams
            pitch = rng.uniform(70, 140) * unit
            seam = np.abs(((v + rng.uniform(0, pitch)) % pitch) - pitch / 2) > pitch / 2 - 1.2 * unit
            img[seam] *= 0.55
    else:  # two-tone backdrop, sometimes speckled (granite, cork)
        c1 = _bg_colour(rng, 0.1, 0.95)
        c2 = np.clip(c1 * rng.uniform(0.6, 1.3) + rng.normal(0, 0.04, 3), 0, 1)
        g = lowfreq_noise(rng, shape, 2)[..., None]
        img = c1[None, None, :] * (1 - g) + c2[None, None, :] * g
        if rng.random() < 0.5:
            sp = rng.random(shape) < rng.uniform(0.01, 0.08)
            img[sp] *= rng.uniform(0.4, 1.6)
            img = np.stack([gaussian_blur(img[..., k].astype(np.float32), 0.6 * unit) for k in range(3)], axis=-1)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _tiles(rng: np.random.Generator, size: int) -> np.ndarray:
    """The northern mint's photos lie on tiles: a saturated two-colour checker with grout lines."""
    c1, c2 = rng.uniform(0.2, 0.9, 3), rng.uniform(0.2, 0.9, 3)
    pitch = rng.uniform(0.08, 0.2) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    checker = ((xx // pitch + yy // pitch) % 2)[..., None]
    img = c1 * checker + c2 * (1 - checker)
    grout = ((xx % pitch) < 1.5) | ((yy % pitch) < 1.5)
    img[grout] = 0.85
    return img.astype(np.float32)


def photograph_coin(
    face: Image.Image,
    rng: np.random.Generator,
    size: int,
    diam: int,
    face_xy: tuple[float, float] | None = None,
    style: str = "classic",
) -> tuple[Image.Image, tuple[float, float] | None]:
    """Place the rendered face on a background and simulate a phone camera.

    ``face_xy`` (a point of the face, e.g. the date's centre) comes back as the same point in the photo's pixels.
    """
    if face_xy is not None:
        face_xy = (
            (face_xy[0] * diam / face.size[0], face_xy[1] * diam / face.size[1])
            if face.size[0] > diam * 1.25
            else face_xy
        )
    unit = size / 256.0
    if face.size[0] > diam * 1.25:
        face = face.resize((diam, diam), Image.BILINEAR)
    # one affine map: scale to diam, slight camera tilt (disc -> mild ellipse), rotation
    scale = diam / face.size[0]
    squash = 1.0 - min(abs(rng.normal(0, 0.04)), 0.15)
    axis = rng.uniform(0, math.pi)
    theta = math.radians(rng.uniform(-25, 25))
    ca, sa = math.cos(axis), math.sin(axis)
    tilt_inv = np.array([[ca, -sa], [sa, ca]]) @ np.diag([1.0, 1.0 / squash]) @ np.array([[ca, sa], [-sa, ca]])
    ct, st = math.cos(theta), math.sin(theta)
    m = tilt_inv @ np.array([[ct, st], [-st, ct]]) / scale  # output offset -> input offset
    cin = face.size[0] / 2.0
    cout = diam / 2.0
    off = np.array([cin, cin]) - m @ np.array([cout, cout])
    coin = face.transform(
        (diam, diam),
        Image.AFFINE,
        (m[0, 0], m[0, 1], off[0], m[1, 0], m[1, 1], off[1]),
        resample=Image.BICUBIC,
    )
    img = _tiles(rng, size) if style == "northern" else table_background(rng, size)
    slack = max(size - diam, 0)
    ox = int(round(slack / 2 + rng.uniform(-0.4, 0.4) * slack))
    oy = int(round(slack / 2 + rng.uniform(-0.4, 0.4) * slack))
    photo_xy = None
    if face_xy is not None:  # invert the affine map: input = m @ (output - cout) + off'
        out_xy = np.linalg.solve(m, np.array(face_xy, dtype=np.float64) - off)
        photo_xy = (float(out_xy[0] + ox), float(out_xy[1] + oy))
    # soft shadow, cast away from the light
    alpha = coin.getchannel("A")
    sdx, sdy = (int(v) for v in rng.uniform(1, 6, 2) * unit)
    q = 4  # the shadow is soft: compute it at quarter resolution
    small = max(1, size // q)
    sh = Image.new("L", (small, small), 0)
    sh.paste(alpha.resize((max(1, diam // q), max(1, diam // q)), Image.BILINEAR), ((ox + sdx) // q, (oy + sdy) // q))
    sh = sh.filter(ImageFilter.GaussianBlur(rng.uniform(2, 6) * unit / q)).resize((size, size), Image.BILINEAR)
    shadow = np.asarray(sh, dtype=np.float32) * (rng.uniform(0.25, 0.55) / 255.0)
    img *= 1.0 - shadow[..., None]
    # coin
    cp = np.asarray(coin, dtype=np.float32) / 255.0
    ca4 = cp[..., 3:4]
    win = img[oy : oy + diam, ox : ox + diam]
    win *= 1.0 - ca4
    win += cp[..., :3] * ca4
    # uneven light: linear gradient, vignette, white balance, exposure, sensor noise
    yy, xx, rr = _grid(size)
    ga = rng.uniform(0, 2 * math.pi)
    light = (
        (1.0 + rng.uniform(0.05, 0.25) * (xx * math.cos(ga) + yy * math.sin(ga)))
        * (1.0 - rng.uniform(0.0, 0.25) * rr)
        * rng.uniform(0.92, 1.08)
    )
    wb = (1.0 + rng.normal(0, 0.02, 3)).astype(np.float32)
    img *= light[..., None]
    img *= wb
    img += (rng.random(img.shape, dtype=np.float32) - 0.5) * (3.46 * rng.uniform(0.004, 0.02))  # sensor noise
    out = Image.fromarray(np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    blur = rng.uniform(0.0, 0.9) * unit
    if blur > 0.2:
        out = out.filter(ImageFilter.GaussianBlur(blur))
    return out, photo_xy


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel coordinates in [-0.5, 0.5) and 2 * squared radius, for photo-level effects."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    rr = 2.0 * (xx**2 + yy**2)
    for a in (yy, xx, rr):
        a.setflags(write=False)
    return yy, xx, rr


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE}, got {size!r}")
    return int(size)


def _check_year(year: int) -> int:
    if isinstance(year, bool) or not isinstance(year, (int, np.integer)):
        raise ValueError(f"year must be an integer, got {year!r}")
    if not 0 <= year <= 9999:
        raise ValueError(f"year must have at most four digits, got {year}")
    return int(year)


@dataclass(frozen=True)
class DateLayout:
    """Where the generator drew the date: side 0 = front, 1 = back; x, y its centre as shares of the photo's size.

    A training target only (the reader learns where dates sit); serving never needs it.
    """

    side: int
    x: float
    y: float


STYLES = ("classic", "northern", "assorted")
"""classic: the project's coins; northern: a second mint that no training saw; assorted: pretraining only."""


def _render(
    year: int, rng_seed: int, size: int, style: str = "classic"
) -> tuple[Image.Image, Image.Image, int, int, DateLayout | None]:
    year = _check_year(year)
    size = _check_size(size)
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(rng_seed) & (2**63 - 1), year]))
    spec = CoinSpec(year, rng, style)
    out = []
    qualities = []
    layout = None
    for side_index, side in enumerate(("front", "back")):
        diam = int(round(size * rng.uniform(0.55, 0.90)))
        render = max(diam, MIN_RENDER)
        h, date_xy = _height_map(spec, side, render, rng)
        face = shade_relief(h, spec, rng)
        photo, photo_xy = photograph_coin(face, rng, size, diam, date_xy, style)
        out.append(photo)
        if photo_xy is not None:
            layout = DateLayout(side_index, photo_xy[0] / size, photo_xy[1] / size)
        qualities.append(int(rng.integers(60, 96)))
    return out[0], out[1], qualities[0], qualities[1], layout


def generate_coin(year: int, rng_seed: int, *, size: int = DEFAULT_SIZE) -> tuple[Image.Image, Image.Image]:
    """Front and back photo (RGB, ``size`` x ``size``) of a coin minted in ``year``.

    Deterministic in (year, rng_seed, size).  The images are returned before
    JPEG compression; :func:`generate_coin_jpegs` / :func:`iter_coins` add it.
    """
    front, back, _, _, _ = _render(year, rng_seed, size)
    return front, back


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


def generate_coin_jpegs(
    year: int, rng_seed: int, *, size: int = DEFAULT_SIZE, style: str = "classic"
) -> tuple[bytes, bytes]:
    """Like :func:`generate_coin` but as JPEG bytes (quality 60-95, drawn from the seed).

    style "northern" is a second mint that the base reader never saw: seven-segment digits above the centre,
    other alloys, photographed on tiles.
    """
    front, back, qf, qb, _ = _render(year, rng_seed, size, style)
    return _jpeg(front, qf), _jpeg(back, qb)


def generate_coin_with_layout(
    year: int, rng_seed: int, *, size: int = DEFAULT_SIZE, style: str = "classic"
) -> tuple[bytes, bytes, DateLayout | None]:
    """JPEG front and back (the same bytes as :func:`generate_coin_jpegs`) and where the date was drawn."""
    front, back, qf, qb, layout = _render(year, rng_seed, size, style)
    return _jpeg(front, qf), _jpeg(back, qb), layout


def coin_plan(i: int, seed: int, year_min: int, year_max: int) -> tuple[int, int]:
    """Year (uniform in [year_min, year_max]) and coin seed of the i-th coin."""
    r = np.random.default_rng(np.random.SeedSequence([int(seed) & (2**63 - 1), i, 0x5EED]))
    year = int(r.integers(year_min, year_max + 1))
    coin_seed = int(r.integers(0, 2**62))
    return year, coin_seed


def _check_range(count: int, year_min: int, year_max: int) -> None:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    _check_year(year_min)
    _check_year(year_max)
    if year_min > year_max:
        raise ValueError(f"year_min ({year_min}) must not exceed year_max ({year_max})")


def iter_coins(
    count: int,
    seed: int,
    *,
    year_min: int = YEAR_MIN,
    year_max: int = YEAR_MAX,
    size: int = DEFAULT_SIZE,
    style: str = "classic",
) -> Iterator[tuple[bytes, bytes, int]]:
    """Yield ``count`` coins as (front JPEG bytes, back JPEG bytes, year).

    Years are uniform in [year_min, year_max]; everything is deterministic in
    ``seed`` and the i-th coin does not depend on ``count``.
    """
    _check_range(count, year_min, year_max)
    _check_size(size)
    for i in range(int(count)):
        year, coin_seed = coin_plan(i, seed, year_min, year_max)
        front, back = generate_coin_jpegs(year, coin_seed, size=size, style=style)
        yield front, back, year


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_dataset(
    out_dir: str | os.PathLike,
    *,
    count: int,
    seed: int,
    year_min: int = YEAR_MIN,
    year_max: int = YEAR_MAX,
    size: int = DEFAULT_SIZE,
    progress: bool = False,
    style: str = "classic",
) -> Path:
    """Write ``count`` coin pairs and ``labels.csv`` into ``out_dir``; return the labels path.

    Files are ``coin_00001_front.jpg`` / ``coin_00001_back.jpg`` ...; labels.csv
    has the header ``front,back,year`` with file names relative to ``out_dir``.
    labels.csv is written last (atomically), so it only lists complete pairs.
    """
    _check_range(count, year_min, year_max)
    _check_size(size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(int(count))))
    it = iter_coins(count, seed, year_min=year_min, year_max=year_max, size=size, style=style)
    if progress:
        it = tqdm(it, total=int(count), desc="synthetic coins", unit="coin")
    rows = []
    for i, (front, back, year) in enumerate(it, start=1):
        fname = f"coin_{i:0{width}d}_front.jpg"
        bname = f"coin_{i:0{width}d}_back.jpg"
        _atomic_write(out / fname, front)
        _atomic_write(out / bname, back)
        rows.append((fname, bname, year))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["front", "back", "year"])
    w.writerows(rows)
    labels = out / LABELS_FILENAME
    _atomic_write(labels, buf.getvalue().encode("utf-8"))
    return labels


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write a synthetic coin dataset (JPEG pairs + labels.csv).")
    p.add_argument("out_dir")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--year-min", type=int, default=YEAR_MIN)
    p.add_argument("--year-max", type=int, default=YEAR_MAX)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE)
    p.add_argument("--style", default="classic", choices=STYLES, help="classic, or northern: a second mint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    labels = write_dataset(
        a.out_dir,
        count=a.count,
        seed=a.seed,
        year_min=a.year_min,
        year_max=a.year_max,
        size=a.size,
        progress=not a.quiet,
        style=a.style,
    )
    print(labels)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
