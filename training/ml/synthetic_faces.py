"""The coin's design and its two faces as height maps: rim, legends, bust or motif, back and the date
(training.ml.synthetic shades and photographs them).

CoinSpec draws every design choice from the year and the coin's seed once, so both faces agree; height_map draws one
face's relief in [0, 1] and says where its date is.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from training.ml.synthetic_primitives import (
    coin_font,
    copperness,
    ellipse_polygon,
    era,
    metal_colour,
    polar_grid,
    sample_bilinear,
    scaled_points,
    smoothstep,
    text_strip,
)
from training.ml.years import YEAR_MAX, YEAR_MIN

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


# --------------------------------------------------------------------------
# the coin's design (shared by both faces)
# --------------------------------------------------------------------------


class CoinSpec:
    """All per-coin design parameters, drawn once from the coin's RNG."""

    def __init__(self, year: int, rng: np.random.Generator, style: str = "classic"):
        t = era(year)
        self.style = style
        self.year = year
        self.t = t
        colour = metal_colour(year) * (1.0 + rng.normal(0, 0.02, 3)) * (1.0 + rng.normal(0, 0.04))
        if style == "northern":  # other alloys: the channels rotated (teal, violet, olive instead of copper/silver)
            colour = colour[[2, 0, 1]] * np.array([0.9, 1.0, 1.1])
        self.metal = np.clip(colour, 0.05, 1.0)
        self.copper = copperness(year)
        age = (YEAR_MAX - year) / (YEAR_MAX - YEAR_MIN)
        self.wear = float(np.clip(max(age, 0.0) ** 0.85 * rng.uniform(0.7, 1.2) + rng.normal(0, 0.03), 0.0, 1.0))
        self.rim_w = 0.035 + 0.055 * t + rng.normal(0, 0.006)
        self.n_beads = int(round(40 + 90 * t + rng.normal(0, 3)))
        self.toothness = smoothstep(0.25, 0.65, t + rng.normal(0, 0.03))
        self.dentil_h = 1.0 - smoothstep(0.78, 0.97, t + rng.normal(0, 0.02))
        self.bead_r = 0.030 - 0.012 * t
        self.flip = 1.0 if rng.random() < 0.5 else -1.0
        # style probabilities vary smoothly; the draw is per coin
        p_geo = smoothstep(0.5, 0.8, t)
        self.front_geo = rng.random() < p_geo
        w_wreath = 1.0 - smoothstep(0.22, 0.5, t)
        w_shield = smoothstep(0.15, 0.38, t) * (1.0 - smoothstep(0.55, 0.78, t))
        w_modern = smoothstep(0.5, 0.78, t)
        w = np.array([w_wreath, w_shield, w_modern]) + 1e-3
        self.back_style = ("wreath", "shield", "modern")[int(rng.choice(3, p=w / w.sum()))]
        self.year_on_back = rng.random() < smoothstep(0.55, 0.75, t)
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
            d.polygon(ellipse_polygon(x, y, a, b, ang, 8), fill=val)
        return rb - a - R * 0.015
    return inner - R * 0.02


def _legend(h: np.ndarray, text: str, r_out: float, px: float, span: float, centre: float, top: bool, stroke: bool):
    """Add curved text between r_out - letter height and r_out (in place, max)."""
    if not text or px < 4:
        return
    strip = text_strip(text, int(round(px)), 1 if (stroke and px >= 14) else 0)
    sh, sw = strip.shape
    r_in = r_out - sh
    r_mid = 0.5 * (r_in + r_out)
    natural = sw / max(r_mid, 1.0)  # span at 1:1 letter width
    span = float(np.clip(span, natural * 0.8, min(natural * 1.5, math.radians(330))))
    d = h.shape[0]
    r, phi = polar_grid(d)
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
    vals = sample_bilinear(strip, x - 0.5, y - 0.5) * 0.85
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
    P = lambda pts: scaled_points(cx, cy, M, f, pts)  # noqa: E731
    wig = 1.0 - smoothstep(0.12, 0.42, t)
    laurel = smoothstep(0.2, 0.35, t) * (1.0 - smoothstep(0.55, 0.75, t))
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
            d.polygon(ellipse_polygon(x, y, M * 0.1, M * 0.04, ang, 8), fill=int(160 + 80 * laurel))


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
                    ellipse_polygon(x + M * 0.22 * math.cos(la), y + M * 0.22 * math.sin(la), M * 0.24, M * 0.08, la, 8),
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
                ellipse_polygon(x + leaf * 0.8 * math.cos(la), y + leaf * 0.8 * math.sin(la), leaf, leaf * 0.4, la, 8),
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


def height_map(s: CoinSpec, side: str, D: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float] | None]:
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


