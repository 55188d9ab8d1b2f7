"""Photos that are not coins, generated: what the "not a coin" score learns to reject and is measured on.

Kinds: textures (noise, stripes, wood-like fields), documents (lines of letters and digits on paper), round
objects that are not coins (plates, buttons, balls, bottle caps), empty backgrounds (the coin generator's own,
without the coin), geometric scenes, furry blobs (a pet photographed too close), and clock faces (round, with
numbers on them: the hardest look-alike). Training draws from TRAIN_KINDS only; "clock" is kept out of training so
that the measured rejection rate includes a kind the model never saw. "token" (a struck metal token: the coin
generator's rim, metal and camera around a star and the word TOKEN) is in neither list: a reader fine-tuned on 40
coins (128 px, one epoch, 2 folds) accepted 25 of 30 token pairs as coins (median coin score 0.89, threshold 0.5),
which makes it the case for curators' "not a coin" teaching the coin head (coin_head.py).
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from training.ml import synthetic

TRAIN_KINDS = ("texture", "document", "round", "background", "shapes", "fur")
HELD_OUT_KINDS = ("clock",)
ALL_KINDS = TRAIN_KINDS + HELD_OUT_KINDS
LOOK_ALIKE_KINDS = ("token",)
_WORDS = ("INVOICE", "Total", "1987", "page", "2024", "Dear", "receipt", "No. 1849", "TAX", "12.50", "date")


def _rgb(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _texture(rng: np.random.Generator, size: int) -> Image.Image:
    field = synthetic.lowfreq_noise(rng, (size, size), int(rng.integers(3, 24)))
    if rng.random() < 0.5:  # stripes / wood grain
        yy = np.mgrid[0:size, 0:size][0].astype(np.float32) / size
        field = 0.5 + 0.5 * np.sin(yy * rng.uniform(10, 60) + field * rng.uniform(2, 12))
    a, b = np.array(_rgb(rng), np.float32), np.array(_rgb(rng), np.float32)
    img = a * field[..., None] + b * (1 - field[..., None])
    img += rng.normal(0, rng.uniform(2, 20), img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def _document(rng: np.random.Generator, size: int) -> Image.Image:
    paper = tuple(int(v) for v in rng.integers(200, 256, 3))
    img = Image.new("RGB", (size, size), paper)
    d = ImageDraw.Draw(img)
    px = int(size * rng.uniform(0.05, 0.12))
    y = rng.uniform(0, px)
    ink = tuple(int(v) for v in rng.integers(0, 90, 3))
    while y < size:
        x = rng.uniform(-px, px)
        while x < size:
            word = _WORDS[int(rng.integers(len(_WORDS)))]
            d.text((x, y), word, font=synthetic.coin_font(px), fill=ink)
            x += px * (len(word) * 0.6 + 1)
        y += px * rng.uniform(1.3, 2.0)
    return img.rotate(float(rng.uniform(-30, 30)), resample=Image.BILINEAR, fillcolor=paper)


def _on_background(rng: np.random.Generator, size: int) -> Image.Image:
    return Image.fromarray((synthetic.table_background(rng, size) * 255).astype(np.uint8), "RGB")


def _round(rng: np.random.Generator, size: int) -> Image.Image:
    img = _on_background(rng, size)
    d = ImageDraw.Draw(img)
    r = size * rng.uniform(0.25, 0.45)
    c = size / 2 + rng.uniform(-0.1, 0.1, 2) * size
    kind = int(rng.integers(4))
    d.ellipse((c[0] - r, c[1] - r, c[0] + r, c[1] + r), fill=_rgb(rng), outline=_rgb(rng), width=int(r * 0.1))
    if kind == 0:  # button: four holes
        for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
            h = r * 0.12
            x, y = c[0] + dx * r * 0.25, c[1] + dy * r * 0.25
            d.ellipse((x - h, y - h, x + h, y + h), fill=(20, 20, 20))
    elif kind == 1:  # plate: inner ring
        d.ellipse((c[0] - r * 0.7, c[1] - r * 0.7, c[0] + r * 0.7, c[1] + r * 0.7), outline=_rgb(rng), width=3)
    elif kind == 2:  # bottle cap: crimped edge
        for k in range(21):
            a = 2 * math.pi * k / 21
            x, y = c[0] + r * math.cos(a), c[1] + r * math.sin(a)
            d.ellipse((x - r * 0.08, y - r * 0.08, x + r * 0.08, y + r * 0.08), fill=_rgb(rng))
    else:  # ball: highlight
        h = r * 0.3
        d.ellipse(
            (c[0] - r * 0.5 - h, c[1] - r * 0.5 - h, c[0] - r * 0.5 + h, c[1] - r * 0.5 + h), fill=(250, 250, 250)
        )
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 2)))


def _shapes(rng: np.random.Generator, size: int) -> Image.Image:
    img = Image.new("RGB", (size, size), _rgb(rng))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 12))):
        x0, y0 = rng.uniform(-0.2, 1, 2) * size
        w, h = rng.uniform(0.05, 0.6, 2) * size
        if rng.random() < 0.5:
            d.rectangle((x0, y0, x0 + w, y0 + h), fill=_rgb(rng))
        else:
            pts = [tuple(p) for p in (rng.uniform(0, 1, (int(rng.integers(3, 7)), 2)) * size)]
            d.polygon(pts, fill=_rgb(rng))
    return img


def _fur(rng: np.random.Generator, size: int) -> Image.Image:
    img = _on_background(rng, size)
    base = np.array(_rgb(rng), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cx, cy, ax, ay = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.6), rng.uniform(0.2, 0.5)
    mask = (((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2) < 1
    streaks = synthetic.gaussian_blur(rng.random((size, size)).astype(np.float32), 1.5)
    fur = base * (0.6 + 0.8 * streaks[..., None])
    arr = np.asarray(img, np.float32)
    arr[mask] = fur[mask]
    for _ in range(2):  # eyes
        ex, ey = cx + rng.uniform(-0.15, 0.15) * ax, cy - 0.3 * ay
        arr[((xx - ex) ** 2 + (yy - ey) ** 2) < (0.03**2)] = (20, 30, 10)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _clock(rng: np.random.Generator, size: int) -> Image.Image:
    img = _on_background(rng, size)
    d = ImageDraw.Draw(img)
    r = size * rng.uniform(0.3, 0.45)
    c = size / 2 + rng.uniform(-0.05, 0.05, 2) * size
    face = tuple(int(v) for v in rng.integers(180, 256, 3))
    d.ellipse((c[0] - r, c[1] - r, c[0] + r, c[1] + r), fill=face, outline=_rgb(rng), width=int(r * 0.08))
    px = max(6, int(r * 0.18))
    for hour in range(1, 13):
        a = math.radians(hour * 30 - 90)
        d.text(
            (c[0] + 0.78 * r * math.cos(a), c[1] + 0.78 * r * math.sin(a)),
            str(hour),
            font=synthetic.coin_font(px),
            fill=(20, 20, 20),
            anchor="mm",
        )
    for length, width in ((0.5, 4), (0.75, 2)):
        a = rng.uniform(0, 2 * math.pi)
        d.line(
            [tuple(c), (c[0] + length * r * math.cos(a), c[1] + length * r * math.sin(a))],
            fill=(10, 10, 10),
            width=width,
        )
    return img


def _token(rng: np.random.Generator, size: int) -> Image.Image:
    """A struck metal token (the coin generator's relief, metal and camera): rim and denticles, a star, "TOKEN";
    no date, no legend, no portrait."""
    spec = synthetic.CoinSpec(int(rng.integers(1800, 2000)), rng, "classic")
    diam = int(round(size * rng.uniform(0.55, 0.90)))
    render = max(diam, synthetic.MIN_RENDER)
    c, radius = render / 2.0, render / 2.0 - 0.5
    relief = Image.new("L", (render, render), 0)
    d = ImageDraw.Draw(relief)
    inner = synthetic.draw_rim(d, c, radius, spec)
    turn = rng.uniform(0, 2 * math.pi)
    star = [
        (c + r * math.cos(turn + k * math.pi / 5), c - inner * 0.1 + r * math.sin(turn + k * math.pi / 5))
        for k in range(10)
        for r in [inner * (0.55 if k % 2 == 0 else 0.23)]
    ]
    d.polygon(star, fill=200)
    synthetic.draw_text(d, c, c + inner * 0.68, "TOKEN", inner * 0.24, fill=230)
    face = synthetic.shade_relief(np.asarray(relief, dtype=np.float32) / 255.0, spec, rng)
    return synthetic.photograph_coin(face, rng, size, diam)[0]


_MAKERS = {
    "texture": _texture,
    "document": _document,
    "round": _round,
    "background": _on_background,
    "shapes": _shapes,
    "fur": _fur,
    "clock": _clock,
    "token": _token,
}


def generate_negative(
    seed: int, *, size: int = synthetic.DEFAULT_SIZE, kinds: tuple[str, ...] = TRAIN_KINDS
) -> Image.Image:
    """One non-coin photo, deterministic in (seed, size, kinds)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & (2**63 - 1), 0x0B1EC7]))
    kind = kinds[int(rng.integers(len(kinds)))]
    return _MAKERS[kind](rng, size)


def generate_negative_jpeg(
    seed: int, *, size: int = synthetic.DEFAULT_SIZE, kinds: tuple[str, ...] = TRAIN_KINDS
) -> bytes:
    buf = io.BytesIO()
    generate_negative(seed, size=size, kinds=kinds).save(buf, format="JPEG", quality=85)
    return buf.getvalue()
