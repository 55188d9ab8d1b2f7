"""Photos as phones take them: degradations of a coin photo, for tests and measurement only.

A collector's photo is rarely the clean, upright, coin-filling square the generator makes. Each kind here is one
thing phones do (the issue's table measured each one alone, 40 pairs each):

* ``turned_exif``: the pixels turned 90/180/270 degrees and the EXIF orientation tag that turns them back (what a
  phone held sideways writes); ``turned_no_exif``: the same pixels without the tag (what an app that strips EXIF
  sends); ``turned_any``: turned by an arbitrary angle (20-340 degrees), no tag;
* ``small_in_frame``: a 2,000-4,000 px photo (4:3, either way up) with the coin covering 5-10 % of the frame;
* ``motion_blur``: a straight shake of 1-3 % of the photo (a handheld 1/30 s; 2-5 % left 9 % of 11 demo coins
  read, a shake few phone photos show); ``glare``: a blown-out highlight over the coin;
  ``jpeg_strong``: JPEG quality 10-30; ``finger``: a fingertip over the rim;
* ``painted_over``: the date covered with paint; its ground truth is "unreadable", not a year.

The coin's disc (needed to frame it and to put a finger on its rim) is given when known (the tests-only renderer
knows it) or found by :func:`find_disc`, a circle search on the edges of the photo. Deterministic in the seed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from training.ml import synthetic

KINDS = (
    "turned_exif",
    "turned_no_exif",
    "turned_any",
    "small_in_frame",
    "motion_blur",
    "glare",
    "jpeg_strong",
    "finger",
    "painted_over",
)
UNREADABLE_KINDS = frozenset({"painted_over"})
ORIENTATION_TAG = 0x0112
# pixels turned counter-clockwise by this many degrees -> the EXIF orientation that turns them back upright
# (Pillow's ImageOps.exif_transpose: 3 -> ROTATE_180, 6 -> ROTATE_270, 8 -> ROTATE_90)
EXIF_FOR_TURN = {90: 6, 180: 3, 270: 8}

Disc = tuple[float, float, float]  # centre x, centre y, radius (pixels)


@dataclass(frozen=True)
class Degraded:
    """One degraded photo: JPEG bytes and what was done (frame size, EXIF tag written, coin share of the frame)."""

    data: bytes
    kind: str
    size: tuple[int, int]
    exif_orientation: int | None = None
    coin_share: float | None = None


@dataclass(frozen=True)
class PhonePair:
    front: bytes
    back: bytes
    year: int
    kind: str

    @property
    def readable(self) -> bool:
        return self.kind not in UNREADABLE_KINDS


def _rgb(photo: bytes | Image.Image) -> Image.Image:
    if isinstance(photo, bytes | bytearray):
        photo = Image.open(io.BytesIO(photo))
    return photo.convert("RGB")


def _encode(image: Image.Image, quality: int, orientation: int | None = None) -> bytes:
    out = io.BytesIO()
    if orientation is None:
        image.save(out, format="JPEG", quality=int(quality))
    else:
        exif = Image.Exif()
        exif[ORIENTATION_TAG] = int(orientation)
        image.save(out, format="JPEG", quality=int(quality), exif=exif.tobytes())
    return out.getvalue()


def find_disc(photo: bytes | Image.Image) -> Disc:
    """The coin's circle in a photo of one coin: the centre and radius (0.2-0.48 of the photo's shorter side) whose
    circle runs along the strongest radial edges. Searched on a 128 px copy. On 20 of the tests-only renderer's
    coins tilted up to 15 degrees (their true disc is known): centre within 6 % of the radius, radius within 6 % on
    19 and 16 % on one (the inner ring of its rim); a coin tilted 40 degrees is an ellipse and may be off by 20 %."""
    image = _rgb(photo)
    scale = 128.0 / min(image.size)
    small = image.convert("L").resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR
    )
    g = np.asarray(small.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32)
    gy, gx = np.gradient(g)
    h, w = g.shape
    angles = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    cos, sin = np.cos(angles), np.sin(angles)
    best = (-1.0, w / 2, h / 2, min(h, w) * 0.3)
    short = min(h, w)
    radii = np.arange(int(short * 0.2), int(short * 0.48) + 1)
    for cy in range(int(h * 0.2), int(h * 0.8) + 1, 2):
        for cx in range(int(w * 0.2), int(w * 0.8) + 1, 2):
            xs = np.clip(np.rint(cx + radii[:, None] * cos), 0, w - 1).astype(int)
            ys = np.clip(np.rint(cy + radii[:, None] * sin), 0, h - 1).astype(int)
            # the gradient's radial part: a coin's edge crosses the circle, a table's lines mostly do not
            on = np.abs(gx[ys, xs] * cos + gy[ys, xs] * sin)
            # mean edge strength along the circle, penalised where a stretch of it has no edge at all
            score = on.mean(1) * (on > on.mean() * 0.5).mean(1)
            i = int(np.argmax(score))
            if score[i] > best[0]:
                best = (float(score[i]), float(cx), float(cy), float(radii[i]))
    _, cx, cy, r = best
    return cx / scale, cy / scale, r / scale


def _turned(image: Image.Image, rng: np.random.Generator, with_exif: bool) -> Degraded:
    turn = int(rng.choice([90, 180, 270]))
    stored = image.rotate(turn, expand=True)
    tag = EXIF_FOR_TURN[turn] if with_exif else None
    kind = "turned_exif" if with_exif else "turned_no_exif"
    return Degraded(_encode(stored, 90, tag), kind, stored.size, tag)


def _border_colour(image: Image.Image) -> tuple[int, int, int]:
    a = np.asarray(image)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return tuple(int(v) for v in np.median(border, axis=0))


def _turned_any(image: Image.Image, rng: np.random.Generator) -> Degraded:
    angle = float(rng.uniform(20, 340))
    out = image.rotate(angle, resample=Image.BICUBIC, fillcolor=_border_colour(image))
    return Degraded(_encode(out, 90), "turned_any", out.size)


def _table(rng: np.random.Generator, size: tuple[int, int], base: tuple[int, int, int]) -> Image.Image:
    """A plain surface around the coin, coloured like the photo's own border, with soft uneven light."""
    cells = (rng.random((6, 8)) * 60 - 30).astype(np.float32)
    light = np.asarray(Image.fromarray(cells, "F").resize(size, Image.BICUBIC), dtype=np.float32)
    a = np.clip(np.array(base, dtype=np.float32)[None, None, :] + light[..., None], 0, 255).astype(np.uint8)
    return Image.fromarray(a, "RGB")


def _small_in_frame(image: Image.Image, disc: Disc, rng: np.random.Generator) -> Degraded:
    long_side = int(rng.integers(2000, 4001))
    short_side = long_side * 3 // 4
    size = (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)
    share = float(rng.uniform(0.05, 0.10))
    r_frame = math.sqrt(share * size[0] * size[1] / math.pi)
    cx, cy, r = disc
    k = r_frame / r
    scaled = image.resize((max(1, round(image.width * k)), max(1, round(image.height * k))), Image.BICUBIC)
    frame = _table(rng, size, _border_colour(image))
    # keep the coin and a margin of its own background (its shadow), feathered into the table
    margin = 1.25 * r_frame
    mask = Image.new("L", scaled.size, 0)
    ImageDraw.Draw(mask).ellipse([cx * k - margin, cy * k - margin, cx * k + margin, cy * k + margin], fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(0.15 * r_frame))
    ox = rng.uniform(margin, size[0] - margin) - cx * k
    oy = rng.uniform(margin, size[1] - margin) - cy * k
    frame.paste(scaled, (round(ox), round(oy)), mask)
    return Degraded(_encode(frame, int(rng.integers(82, 93))), "small_in_frame", size, None, share)


def _motion_blur(image: Image.Image, rng: np.random.Generator) -> Degraded:
    length = rng.uniform(0.01, 0.03) * min(image.size)
    angle = rng.uniform(0, math.pi)
    a = np.asarray(image, dtype=np.float32)
    pad = int(math.ceil(length / 2)) + 1
    padded = np.pad(a, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    steps = np.linspace(-length / 2, length / 2, max(3, int(length) + 1))
    acc = np.zeros_like(a)
    for t in steps:
        dx, dy = int(round(t * math.cos(angle))), int(round(t * math.sin(angle)))
        acc += padded[pad + dy : pad + dy + a.shape[0], pad + dx : pad + dx + a.shape[1]]
    out = Image.fromarray(np.clip(acc / len(steps) + 0.5, 0, 255).astype(np.uint8), "RGB")
    return Degraded(_encode(out, 88), "motion_blur", out.size)


def _glare(image: Image.Image, disc: Disc, rng: np.random.Generator) -> Degraded:
    a = np.asarray(image, dtype=np.float32)
    h, w = a.shape[:2]
    cx, cy, r = disc
    gx, gy = cx + rng.uniform(-0.5, 0.5) * r, cy + rng.uniform(-0.5, 0.5) * r
    rx, ry = rng.uniform(0.25, 0.6) * r, rng.uniform(0.12, 0.35) * r
    turn = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xx - gx) * math.cos(turn) + (yy - gy) * math.sin(turn)
    v = -(xx - gx) * math.sin(turn) + (yy - gy) * math.cos(turn)
    spot = np.exp(-((u / rx) ** 2 + (v / ry) ** 2) * 1.5)
    out = a + spot[..., None] * rng.uniform(180, 320)
    image = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")
    return Degraded(_encode(image, 88), "glare", image.size)


def _jpeg_strong(image: Image.Image, rng: np.random.Generator) -> Degraded:
    return Degraded(_encode(image, int(rng.integers(10, 31))), "jpeg_strong", image.size)


def _finger(image: Image.Image, disc: Disc, rng: np.random.Generator) -> Degraded:
    """A fingertip from outside the coin over its rim: a rounded, shaded skin-coloured capsule whose tip stops
    70-90 % of the radius from the centre (it covers rim and edge, not the middle)."""
    cx, cy, r = disc
    phi = rng.uniform(0, 2 * math.pi)
    width = rng.uniform(0.35, 0.5) * r
    tip = r * rng.uniform(0.7, 0.9)
    tx, ty = cx + tip * math.cos(phi), cy + tip * math.sin(phi)
    far = 3 * r
    bx, by = cx + far * math.cos(phi), cy + far * math.sin(phi)
    mask = Image.new("L", image.size, 0)
    d = ImageDraw.Draw(mask)
    d.line([(tx, ty), (bx, by)], fill=255, width=int(2 * width))
    d.ellipse([tx - width, ty - width, tx + width, ty + width], fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(1.0, width * 0.08)))
    a = np.asarray(image, dtype=np.float32)
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    across = ((xx - tx) * -math.sin(phi) + (yy - ty) * math.cos(phi)) / width  # -1..1 across the finger
    skin = np.array([224, 172, 140], dtype=np.float32) * rng.uniform(0.55, 1.05)
    shade = np.clip(1.0 - 0.35 * across**2, 0.4, 1.0)[..., None]
    m = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    out = a * (1 - m) + np.clip(skin * shade, 0, 255) * m
    image = Image.fromarray(out.astype(np.uint8), "RGB")
    return Degraded(_encode(image, 88), "finger", image.size)


def paint_over(image: Image.Image, centre: tuple[float, float], radius: float, rng: np.random.Generator) -> Image.Image:
    """Opaque enamel over a disc of ``radius`` around ``centre`` (a few overlapping blobs, at least that disc)."""
    mask = Image.new("L", image.size, 0)
    d = ImageDraw.Draw(mask)
    x, y = centre
    d.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    for _ in range(5):
        ox, oy = rng.uniform(-0.4, 0.4, 2) * radius
        rr = rng.uniform(0.5, 0.8) * radius
        d.ellipse([x + ox - rr, y + oy - rr, x + ox + rr, y + oy + rr], fill=255)
    colour = [(190, 25, 25), (15, 15, 15), (235, 235, 228), (25, 60, 180)][int(rng.integers(0, 4))]
    paint = Image.new("RGB", image.size, colour)
    out = image.copy()
    out.paste(paint, (0, 0), mask)
    return out


def degrade(
    photo: bytes | Image.Image,
    kind: str,
    seed: int,
    *,
    disc: Disc | None = None,
    date_centre: tuple[float, float] | None = None,
    paint_radius: float | None = None,
) -> Degraded:
    """One photo degraded as ``kind``. ``disc`` (found with :func:`find_disc` when None) frames the coin;
    ``painted_over`` needs the date's centre (and paints ``paint_radius``, 0.2 of the photo by default); a photo
    without a date passes unchanged (re-encoded) through ``painted_over``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & (2**63 - 1), KINDS.index(kind), 0xF0E]))
    image = _rgb(photo)
    if kind in ("turned_exif", "turned_no_exif"):
        return _turned(image, rng, kind == "turned_exif")
    if kind == "turned_any":
        return _turned_any(image, rng)
    if kind == "motion_blur":
        return _motion_blur(image, rng)
    if kind == "jpeg_strong":
        return _jpeg_strong(image, rng)
    if kind == "painted_over":
        if date_centre is not None:
            radius = paint_radius if paint_radius is not None else 0.2 * min(image.size)
            image = paint_over(image, date_centre, radius, rng)
        return Degraded(_encode(image, 90), kind, image.size)
    disc = disc if disc is not None else find_disc(image)
    if kind == "small_in_frame":
        return _small_in_frame(image, disc, rng)
    if kind == "glare":
        return _glare(image, disc, rng)
    return _finger(image, disc, rng)


def demo_phone_pairs(count: int, seed: int, *, size: int = 256) -> Iterator[PhonePair]:
    """``count`` fresh demo coins (training.ml.synthetic, classic style) each degraded by one kind in turn
    (coin i gets KINDS[i % len(KINDS)]), both sides alike; a painted-over coin has its date side painted."""
    for i in range(int(count)):
        plan = np.random.default_rng(np.random.SeedSequence([int(seed) & (2**63 - 1), i, 0xDE40]))
        year = int(plan.integers(synthetic.YEAR_MIN, synthetic.YEAR_MAX + 1))
        front, back, layout = synthetic.generate_coin_with_layout(year, int(plan.integers(0, 2**62)), size=size)
        kind = KINDS[i % len(KINDS)]
        sides = []
        for side, data in enumerate((front, back)):
            centre = None
            if kind == "painted_over" and layout is not None and layout.side == side:
                centre = (layout.x * size, layout.y * size)
            sides.append(degrade(data, kind, seed * 7919 + 2 * i + side, date_centre=centre).data)
        yield PhonePair(sides[0], sides[1], year, kind)
