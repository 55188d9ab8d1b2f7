"""A second coin renderer, for tests and measurement only: coins that no generator of the training pipeline drew.

Why it exists: the reader is trained on ``training.ml.synthetic`` (and pretrained on it, with ``negatives`` as
non-coins), so measuring it on more of the same says little about a collector's real coins. This module shares no
code, no font and no layout with those generators, and training must never import it (an import-linter contract in
pyproject.toml forbids every app from importing ``tests``):

* fonts: three committed font files (STIX General Bold, SIL OFL 1.1; DejaVu Serif Condensed Bold and DejaVu Sans
  Mono Bold, Bitstream Vera licence; see fonts/LICENSE_*), never Pillow's bundled font that the generator uses;
* layouts: the date under a value numeral, along the rim (each digit turned on the arc), small and off-centre,
  turned by an arbitrary angle, big across the middle, or split on both sides of an emblem; legends of invented
  words, stars, dots, other numbers (the value, never a four-digit number that could be a year);
* relief: a height map lit with a Blinn-Phong model (light azimuth and elevation drawn per coin), cavity dirt,
  toning and scratches; metals: gold, silver, copper, brass, steel, aluminium, bronze, blackened silver, bimetal;
* photo (camera.py): a 3-D tilt of the coin plane seen through a pinhole (true perspective, up to 40 degrees), any in-plane
  turn, a cast shadow, wood, velvet, graph paper, linen, marble or slate, uneven light, defocus, sensor noise, JPEG.

Everything is deterministic in the seed (same Pillow build). The true year is uniform in 1700-2025, the span of
``TrainConfig.year_min``/``year_max`` (a test checks they agree).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tests.generalisation import camera

# training.ml.years' range, written out: this renderer shares no code with the training side (a test checks both)
YEAR_MIN, YEAR_MAX = 1700, 2025
FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONTS = ("STIXGeneralBol.ttf", "DejaVuSerifCondensed-Bold.ttf", "DejaVuSansMono-Bold.ttf")
LAYOUTS = ("under_value", "along_rim", "small_offset", "rotated", "big_horizontal", "split")
# base colour (linear-ish RGB in [0, 1]), specular colour, shininess
METALS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], float]] = {
    "gold": ((0.83, 0.62, 0.22), (1.0, 0.9, 0.6), 40.0),
    "silver": ((0.78, 0.78, 0.80), (1.0, 1.0, 1.0), 60.0),
    "copper": ((0.72, 0.38, 0.22), (1.0, 0.75, 0.6), 25.0),
    "brass": ((0.80, 0.68, 0.35), (1.0, 0.95, 0.7), 35.0),
    "steel": ((0.60, 0.62, 0.66), (0.95, 0.97, 1.0), 80.0),
    "aluminium": ((0.86, 0.87, 0.88), (1.0, 1.0, 1.0), 15.0),
    "bronze": ((0.55, 0.40, 0.25), (0.9, 0.75, 0.55), 20.0),
    "blackened_silver": ((0.35, 0.34, 0.36), (0.8, 0.8, 0.85), 30.0),
}
BIMETAL = "bimetal"
_SYLLABLES = (
    "RE PU BLI CA NOR VA LIA STA TO UNI TED KRA LJE VI NA MON TE SAL DO BER GIA FRA TER NI TAS ES KO RU OS LAN "
    "DIA MAR ZE HEL VE SUD AR GEN"
).split()
_UNITS = ("CENTS", "ORE", "KOPEK", "DINAR", "GROSZY", "LIRE", "PENNY", "REALES", "FILLER", "PARA", "SOLDI", "MARKKA")
_VALUES = ("1", "2", "5", "10", "20", "25", "50", "100", "250", "1/2", "500")


@dataclass(frozen=True)
class CoinPair:
    """One rendered coin: two RGB photos, the true year and where things are (photo pixels).

    ``date_box`` is the bounding box (x0, y0, x1, y1) of the date on the ``date_side`` photo (0 front, 1 back);
    ``discs`` the coin on each photo as (centre x, centre y, radius of the disc of the same area).
    """

    front: Image.Image
    back: Image.Image
    year: int
    layout: str
    date_side: int
    metal: str
    background: str
    date_box: tuple[float, float, float, float]
    discs: tuple[tuple[float, float, float], tuple[float, float, float]]
    painted_over: bool = False

    def jpegs(self, quality: int = 88) -> tuple[bytes, bytes]:
        return _jpeg(self.front, quality), _jpeg(self.back, quality)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=int(quality))
    return out.getvalue()


@lru_cache(maxsize=128)
def _font(name: str, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / name), max(6, int(px)))


def _star(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, points: int, turn: float, fill: int) -> None:
    pts = []
    for k in range(2 * points):
        rad = r if k % 2 == 0 else r * 0.42
        a = turn + math.pi * k / points - math.pi / 2
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    draw.polygon(pts, fill=fill)


def _paste_text(
    layer: Image.Image, text: str, font: ImageFont.FreeTypeFont, cx: float, cy: float, angle_deg: float, fill: int
) -> tuple[float, float, float, float]:
    """Draw text centred on (cx, cy), turned by angle_deg (counter-clockwise); return its bounding box."""
    left, top, right, bottom = font.getbbox(text)
    w, h = right - left + 4, bottom - top + 4
    tile = Image.new("L", (w, h), 0)
    ImageDraw.Draw(tile).text((2 - left, 2 - top), text, font=font, fill=fill)
    if angle_deg:
        tile = tile.rotate(angle_deg, resample=Image.BICUBIC, expand=True)
    x0, y0 = int(round(cx - tile.width / 2)), int(round(cy - tile.height / 2))
    layer.paste(Image.fromarray(np.maximum(_crop(layer, x0, y0, tile.size), np.asarray(tile))), (x0, y0))
    return float(x0), float(y0), float(x0 + tile.width), float(y0 + tile.height)


def _crop(layer: Image.Image, x0: int, y0: int, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(layer.crop((x0, y0, x0 + size[0], y0 + size[1])))


def _arc_text(
    layer: Image.Image, text: str, font: ImageFont.FreeTypeFont, c: float, radius: float, centre: float, bottom: bool
) -> tuple[float, float, float, float]:
    """Each character turned tangent to a circle; read clockwise on top, anticlockwise at the bottom (as coins do)."""
    widths = [max(font.getlength(ch), font.size * 0.3) for ch in text]
    total = sum(widths) * 1.08
    step = -1.0 if bottom else 1.0
    angle = centre - step * total / radius / 2
    boxes = []
    for ch, w in zip(text, widths, strict=True):
        mid = angle + step * (w * 1.08 / 2) / radius
        x, y = c + radius * math.cos(mid), c + radius * math.sin(mid)
        turn = -math.degrees(mid) - 90 if not bottom else -math.degrees(mid) + 90
        if ch.strip():
            boxes.append(_paste_text(layer, ch, font, x, y, turn, 255))
        angle += step * w * 1.08 / radius
    if not boxes:
        return (c, c, c, c)
    xs0, ys0, xs1, ys1 = zip(*boxes, strict=True)
    return min(xs0), min(ys0), max(xs1), max(ys1)


# --- the design ------------------------------------------------------------------------------------------------------


def _legend(rng: np.random.Generator) -> str:
    words = []
    for _ in range(int(rng.integers(1, 4))):
        words.append("".join(rng.choice(_SYLLABLES) for _ in range(int(rng.integers(2, 4)))))
    return (" \u00b7 " if rng.random() < 0.4 else " ").join(words)


def _emblem(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, rng: np.random.Generator, fill: int) -> None:
    """A central emblem that is not a number: shield, sun, tower, ship, wings or a ring of stars."""
    kind = int(rng.integers(0, 6))
    if kind == 0:  # shield with a chevron
        draw.polygon(
            [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + 0.2 * r), (cx, cy + r), (cx - r, cy + 0.2 * r)],
            fill=fill // 2,
        )
        draw.line(
            [(cx - r, cy + 0.3 * r), (cx, cy - 0.4 * r), (cx + r, cy + 0.3 * r)], fill=fill, width=max(2, int(r * 0.18))
        )
    elif kind == 1:  # sun: disc and rays
        for k in range(16):
            a = 2 * math.pi * k / 16
            draw.line(
                [(cx, cy), (cx + r * math.cos(a), cy + r * math.sin(a))], fill=fill // 2, width=max(1, int(r * 0.08))
            )
        draw.ellipse([cx - 0.45 * r, cy - 0.45 * r, cx + 0.45 * r, cy + 0.45 * r], fill=fill)
    elif kind == 2:  # tower with crenellations
        draw.rectangle([cx - 0.5 * r, cy - 0.6 * r, cx + 0.5 * r, cy + r], fill=fill)
        for k in range(3):
            x = cx - 0.5 * r + k * 0.4 * r
            draw.rectangle([x, cy - 0.85 * r, x + 0.2 * r, cy - 0.6 * r], fill=fill)
        draw.rectangle([cx - 0.15 * r, cy + 0.4 * r, cx + 0.15 * r, cy + r], fill=fill // 3)
    elif kind == 3:  # ship: hull and two sails
        draw.polygon(
            [
                (cx - r, cy + 0.3 * r),
                (cx + r, cy + 0.3 * r),
                (cx + 0.7 * r, cy + 0.75 * r),
                (cx - 0.7 * r, cy + 0.75 * r),
            ],
            fill=fill,
        )
        draw.polygon(
            [(cx - 0.1 * r, cy - r), (cx - 0.1 * r, cy + 0.2 * r), (cx - 0.8 * r, cy + 0.2 * r)], fill=fill // 2
        )
        draw.polygon(
            [(cx + 0.1 * r, cy - 0.8 * r), (cx + 0.1 * r, cy + 0.2 * r), (cx + 0.7 * r, cy + 0.2 * r)], fill=fill // 2
        )
    elif kind == 4:  # wings
        for side in (-1, 1):
            for k in range(5):
                y = cy - 0.5 * r + k * 0.22 * r
                draw.polygon(
                    [(cx, y), (cx + side * r * (1 - 0.12 * k), y - 0.25 * r), (cx + side * r * 0.2, y + 0.2 * r)],
                    fill=fill - 30 * (k % 2),
                )
        draw.ellipse([cx - 0.18 * r, cy - 0.85 * r, cx + 0.18 * r, cy - 0.45 * r], fill=fill)
        draw.rectangle([cx - 0.15 * r, cy - 0.5 * r, cx + 0.15 * r, cy + 0.6 * r], fill=fill)
    else:  # ring of stars around a dot
        n = int(rng.integers(5, 13))
        for k in range(n):
            a = 2 * math.pi * k / n
            _star(draw, cx + 0.7 * r * math.cos(a), cy + 0.7 * r * math.sin(a), 0.2 * r, 5, a, fill)
        draw.ellipse([cx - 0.2 * r, cy - 0.2 * r, cx + 0.2 * r, cy + 0.2 * r], fill=fill)


def _rim(draw: ImageDraw.ImageDraw, c: float, R: float, rng: np.random.Generator) -> float:
    """Raised rim (plain, beaded or with a fine inner ring); returns the inner radius left for the design."""
    width = R * rng.uniform(0.06, 0.11)
    draw.ellipse([c - R, c - R, c + R, c + R], fill=200)
    draw.ellipse([c - R + width, c - R + width, c + R - width, c + R - width], fill=70)
    inner = R - width
    style = int(rng.integers(0, 3))
    if style == 1:  # beads just inside the rim
        n = int(rng.integers(40, 90))
        br = R * 0.018
        for k in range(n):
            a = 2 * math.pi * k / n
            x, y = c + (inner - 2.2 * br) * math.cos(a), c + (inner - 2.2 * br) * math.sin(a)
            draw.ellipse([x - br, y - br, x + br, y + br], fill=170)
        inner -= 4.4 * br
    elif style == 2:  # a thin raised ring
        t = max(1, int(R * 0.012))
        g = R * 0.05
        draw.ellipse([c - inner + g, c - inner + g, c + inner - g, c + inner - g], outline=160, width=t)
        inner -= g + t
    return inner


def _design(
    side: str, D: int, rng: np.random.Generator, year: int | None, layout: str, fonts: tuple[str, str]
) -> tuple[np.ndarray, tuple[float, float, float, float] | None]:
    """Height map of one face in [0, 1] (0 outside the coin) and the date's box in face pixels (None without one)."""
    img = Image.new("L", (D, D), 0)
    draw = ImageDraw.Draw(img)
    c, R = D / 2.0, D / 2.0 - 1
    inner = _rim(draw, c, R, rng)
    legend_font = _font(fonts[0], inner * rng.uniform(0.11, 0.15))
    date_font = fonts[1]
    box = None
    if year is None:  # the other side: legend, emblem, value and stars
        _arc_text(img, _legend(rng), legend_font, c, inner - legend_font.size * 0.7, -math.pi / 2, False)
        _emblem(draw, c, c - 0.05 * inner, inner * rng.uniform(0.35, 0.5), rng, 235)
        if rng.random() < 0.7:
            _paste_text(img, str(rng.choice(_VALUES)), _font(fonts[1], inner * 0.22), c, c + 0.62 * inner, 0, 240)
        for k in range(int(rng.integers(0, 3))):
            a = math.pi * (0.3 + 0.4 * k)
            _star(draw, c + 0.78 * inner * math.cos(a), c + 0.78 * inner * math.sin(a), inner * 0.06, 5, 0, 230)
        return np.asarray(img, dtype=np.float32) / 255.0, None
    digits = f"{year:04d}"
    if layout == "under_value":
        _paste_text(img, str(rng.choice(_VALUES)), _font(date_font, inner * 0.5), c, c - 0.12 * inner, 0, 245)
        _paste_text(img, str(rng.choice(_UNITS)), _font(fonts[0], inner * 0.13), c, c + 0.25 * inner, 0, 220)
        box = _paste_text(img, digits, _font(date_font, inner * rng.uniform(0.2, 0.26)), c, c + 0.52 * inner, 0, 245)
        _arc_text(img, _legend(rng), legend_font, c, inner - legend_font.size * 0.7, -math.pi / 2, False)
    elif layout == "along_rim":
        _emblem(draw, c, c - 0.08 * inner, inner * rng.uniform(0.35, 0.5), rng, 235)
        font = _font(date_font, inner * rng.uniform(0.18, 0.23))
        box = _arc_text(img, digits, font, c, inner - font.size * 0.7, math.pi / 2, True)
        _arc_text(img, _legend(rng), legend_font, c, inner - legend_font.size * 0.7, -math.pi / 2, False)
        for side_angle in (math.radians(35), math.radians(145)):
            x, y = c + 0.85 * inner * math.cos(side_angle), c + 0.85 * inner * math.sin(side_angle)
            _star(draw, x, y, inner * 0.05, 5, 0, 230)
    elif layout == "small_offset":
        _emblem(draw, c - 0.1 * inner, c - 0.1 * inner, inner * 0.45, rng, 235)
        sx = rng.choice([-1.0, 1.0])
        box = _paste_text(
            img,
            digits,
            _font(date_font, inner * rng.uniform(0.15, 0.2)),
            c + sx * 0.45 * inner,
            c + 0.5 * inner,
            float(rng.uniform(-15, 15)),
            245,
        )
        _paste_text(
            img,
            str(rng.choice(_VALUES)),
            _font(date_font, inner * 0.16),
            c - sx * 0.45 * inner,
            c + 0.5 * inner,
            0,
            240,
        )
        _arc_text(img, _legend(rng), legend_font, c, inner - legend_font.size * 0.7, -math.pi / 2, False)
    elif layout == "rotated":
        _emblem(draw, c, c, inner * 0.3, rng, 220)
        a = rng.uniform(0, 2 * math.pi)
        turn = float(rng.uniform(-180, 180))
        box = _paste_text(
            img,
            digits,
            _font(date_font, inner * rng.uniform(0.19, 0.25)),
            c + 0.55 * inner * math.cos(a),
            c + 0.55 * inner * math.sin(a),
            turn,
            245,
        )
        _paste_text(
            img,
            str(rng.choice(_VALUES)),
            _font(fonts[0], inner * 0.18),
            c - 0.55 * inner * math.cos(a),
            c - 0.55 * inner * math.sin(a),
            turn,
            235,
        )
    elif layout == "big_horizontal":
        _emblem(draw, c, c - 0.55 * inner, inner * 0.22, rng, 200)
        box = _paste_text(img, digits, _font(date_font, inner * rng.uniform(0.32, 0.4)), c, c + 0.05 * inner, 0, 250)
        _paste_text(img, str(rng.choice(_UNITS)), _font(fonts[0], inner * 0.12), c, c + 0.5 * inner, 0, 220)
    else:  # split: "19" and "84" on both sides of an emblem
        _emblem(draw, c, c + 0.05 * inner, inner * 0.3, rng, 235)
        font = _font(date_font, inner * rng.uniform(0.21, 0.27))
        b1 = _paste_text(img, digits[:2], font, c - 0.58 * inner, c + 0.1 * inner, 0, 245)
        b2 = _paste_text(img, digits[2:], font, c + 0.58 * inner, c + 0.1 * inner, 0, 245)
        box = (b1[0], min(b1[1], b2[1]), b2[2], max(b1[3], b2[3]))
        _arc_text(img, _legend(rng), legend_font, c, inner - legend_font.size * 0.7, -math.pi / 2, False)
    return np.asarray(img, dtype=np.float32) / 255.0, box


# --- light and metal -------------------------------------------------------------------------------------------------


def _light(h: np.ndarray, metal: str, rng: np.random.Generator, light: tuple[float, float]) -> np.ndarray:
    """RGB face in [0, 1]: the relief lit by one light (Blinn-Phong) with toning, dirt in the recesses, scratches."""
    D = h.shape[0]
    yy, xx = np.mgrid[0:D, 0:D].astype(np.float32)
    rr = np.hypot(xx - D / 2, yy - D / 2) / (D / 2)
    relief = camera.smooth(h, max(1, D // 360)) * (D * rng.uniform(0.04, 0.08))
    gy, gx = np.gradient(relief)
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    nx, ny, nz = -gx / norm, -gy / norm, 1.0 / norm
    az, el = light
    lx, ly, lz = math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)
    diffuse = np.clip(nx * lx + ny * ly + nz * lz, 0, 1)
    hx, hy, hz = lx, ly, lz + 1.0
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    spec_dot = np.clip((nx * hx + ny * hy + nz * hz) / hn, 0, 1)
    if metal == BIMETAL:
        outer, inner = rng.choice(["gold", "silver", "brass", "steel"], 2, replace=False)
        ring = (rr > rng.uniform(0.6, 0.72))[..., None]
        base = np.where(ring, np.array(METALS[outer][0]), np.array(METALS[inner][0])).astype(np.float32)
        spec_col = np.array(METALS[inner][1], dtype=np.float32)
        shine = METALS[inner][2]
    else:
        base_c, spec_c, shine = METALS[metal]
        base = np.broadcast_to(np.array(base_c, dtype=np.float32) * rng.uniform(0.85, 1.1), (D, D, 3)).copy()
        spec_col = np.array(spec_c, dtype=np.float32)
    tone = camera.value_noise(rng, (D, D), 5)
    base *= (1.0 - rng.uniform(0.0, 0.35) * tone)[..., None]
    cavity = np.clip(camera.smooth(h, max(2, D // 60)) - h, 0, 1)
    base *= (1.0 - rng.uniform(0.5, 2.0) * cavity)[..., None]
    ambient = rng.uniform(0.25, 0.45)
    rgb = base * (ambient + (1 - ambient) * diffuse)[..., None]
    rgb += spec_col * (rng.uniform(0.3, 0.8) * spec_dot**shine)[..., None]
    scratches = Image.new("L", (D, D), 0)
    sd = ImageDraw.Draw(scratches)
    for _ in range(int(rng.integers(0, 12))):
        x0, y0 = rng.uniform(0, D, 2)
        a = rng.uniform(0, math.pi)
        ln = rng.uniform(0.05, 0.4) * D
        sd.line([(x0, y0), (x0 + ln * math.cos(a), y0 + ln * math.sin(a))], fill=int(rng.integers(60, 160)), width=1)
    rgb *= (1.0 - 0.35 * np.asarray(scratches, dtype=np.float32) / 255.0)[..., None]
    return np.clip(rgb, 0, 1)


def _paint_over(face: np.ndarray, box: tuple[float, float, float, float], rng: np.random.Generator) -> None:
    """Cover the date with opaque enamel paint: a few overlapping ellipses over its box, with a little margin."""
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * 0.15 + 3, (y1 - y0) * 0.25 + 3
    mask = Image.new("L", (face.shape[1], face.shape[0]), 0)
    md = ImageDraw.Draw(mask)
    md.rectangle([x0 - mx * 0.5, y0 - my * 0.5, x1 + mx * 0.5, y1 + my * 0.5], fill=255)
    for _ in range(6):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        rx, ry = rng.uniform(0.2, 0.5) * (x1 - x0) + mx, rng.uniform(0.4, 0.8) * (y1 - y0) + my
        md.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    m = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    colour = np.array([[0.75, 0.1, 0.1], [0.05, 0.05, 0.05], [0.92, 0.92, 0.9], [0.1, 0.25, 0.7]])[
        int(rng.integers(0, 4))
    ]
    paint = colour * (0.9 + 0.1 * rng.random(face.shape).astype(np.float32))
    face[:] = face * (1 - m) + paint * m


def render_pair(
    seed: int,
    *,
    size: int | None = None,
    year: int | None = None,
    layout: str | None = None,
    painted_over: bool = False,
    max_tilt: float = 40.0,
) -> CoinPair:
    """One coin as a front and back photo (RGB, ``size`` px square; drawn in 256-448 when None), deterministic in
    the arguments. The date is on one side only; ``painted_over`` covers it with paint (ground truth: unreadable).
    ``max_tilt`` bounds the camera's tilt (degrees; 40 by default, up to a 0.77:1 ellipse)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & (2**63 - 1), 0xC01D]))
    # drawn whether given or not, so that the same seed with another year (or layout, size) is the same coin
    drawn_year, drawn_layout, drawn_size = (
        int(rng.integers(YEAR_MIN, YEAR_MAX + 1)),
        rng.choice(LAYOUTS),
        rng.integers(256, 449),
    )
    year = drawn_year if year is None else int(year)
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise ValueError(f"year must be in {YEAR_MIN}-{YEAR_MAX}, got {year}")
    layout = str(drawn_layout) if layout is None else layout
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    size = int(drawn_size) if size is None else int(size)
    metal = str(rng.choice([*METALS, BIMETAL]))
    background = str(rng.choice(camera.BACKGROUNDS))
    fonts = tuple(str(f) for f in rng.choice(FONTS, 2))
    date_side = int(rng.integers(0, 2))
    light = (float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(math.radians(25), math.radians(70))))
    photos, discs, date_box = [], [], (0.0, 0.0, 0.0, 0.0)
    for side in (0, 1):
        d = size * rng.uniform(0.55, 0.85)
        D = int(min(max(2 * d, 300), 720))
        h, box = _design("front" if side == 0 else "back", D, rng, year if side == date_side else None, layout, fonts)
        face = _light(h, metal, rng, light)
        if box is not None and painted_over:  # its own generator: the painted coin is otherwise the same coin
            _paint_over(face, box, np.random.default_rng(np.random.SeedSequence([int(seed) & (2**63 - 1), 0xBA1])))
        yy, xx = np.mgrid[0:D, 0:D].astype(np.float32)
        alpha = np.clip(D / 2 - np.hypot(xx - D / 2 + 0.5, yy - D / 2 + 0.5), 0, 1)
        turn = math.radians(rng.uniform(-25, 25) if rng.random() < 0.6 else rng.uniform(-180, 180))
        tilt = math.radians(rng.uniform(0, 1) * max_tilt)
        slack = (size - d) / 2
        centre = (size / 2 + rng.uniform(-0.5, 0.5) * slack, size / 2 + rng.uniform(-0.5, 0.5) * slack)
        hm = camera.homography(D, d, turn, tilt, rng.uniform(0, math.pi), d * rng.uniform(1.5, 5.0), centre)
        bg = camera.background(background, size, rng)
        photos.append(camera.photograph(face, alpha, size, hm, bg, rng, light[0]))
        rim = np.array(
            [(D / 2 + D / 2 * math.cos(t), D / 2 + D / 2 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 64)]
        )
        poly = camera.apply_homography(hm, rim)
        area = 0.5 * abs(np.dot(poly[:, 0], np.roll(poly[:, 1], 1)) - np.dot(poly[:, 1], np.roll(poly[:, 0], 1)))
        discs.append((float(poly[:, 0].mean()), float(poly[:, 1].mean()), float(math.sqrt(area / math.pi))))
        if box is not None:
            corners = camera.apply_homography(
                hm, np.array([(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])])
            )
            date_box = (
                float(corners[:, 0].min()),
                float(corners[:, 1].min()),
                float(corners[:, 0].max()),
                float(corners[:, 1].max()),
            )
    return CoinPair(
        photos[0], photos[1], year, layout, date_side, metal, background, date_box, (discs[0], discs[1]), painted_over
    )


class RenderedJpegs(NamedTuple):
    front: bytes
    back: bytes
    year: int
    layout: str


def iter_pairs(count: int, seed: int, *, size: int | None = None) -> Iterator[RenderedJpegs]:
    """``count`` coins as (front JPEG, back JPEG, year, layout); the i-th coin does not depend on ``count``. JPEG
    quality 70-93, drawn per coin."""
    for i in range(int(count)):
        pair = render_pair(seed * 1_000_003 + i, size=size)
        quality = 70 + (seed * 31 + i * 7) % 24
        front, back = pair.jpegs(quality)
        yield RenderedJpegs(front, back, pair.year, pair.layout)
