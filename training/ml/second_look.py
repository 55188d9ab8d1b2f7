"""A second look when the reader is unsure: find the coin in a large frame, crop it, and try the photo turned.

Why: the reader is trained on upright photos that the coin fills (rotation ±25°, augmentation ±10°), and the
first look decodes a centred square of the whole photo. Measured on the `make run` model (issue 22, tests-only
phone degradations): photos turned 90/180/270° without an EXIF tag were read 0 % exact (100 % with the tag), a
coin covering 5-10 % of a 2,000-4,000 px frame 0 % (45 % judged not a coin). Fresh upright demo coins read 97 %.

What: only the pairs whose first read is unsure (read score below ``SURE_READ``, or judged not a coin) are looked
at again. Each photo is decoded again, turned upright by its EXIF tag, and its disc is located classically
(``find_disc``: edge energy on a downscaled grey copy, no OpenCV); a disc much smaller than the frame is cropped
with a margin, then the crop goes through the ONE preprocessing finish (``decoding.finish``: the same centre
square, reduce and resize as training and serving) at the reader's resolution. The front's and the back's four
quarter turns are paired in all 16 ways and read in one batched pass (a phone turns each photo on its own, so
front and back may need different turns); the pair the reader is most sure of wins, and only when it is surer than
the first look by MARGIN and sure itself. The prediction's details say which path answered ("second_look": "front turned 90°, cropped").

Both backends (ONNX Runtime and PyTorch) run the same code: it only calls ``predictor.predict``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter

from training.ml import decoding, images
from training.ml.config import TrainConfig

# A pair whose first read puts less than this mass within one year of its answer (or that is judged not a coin)
# gets the second look. Measured on the `make run` model (scripts/bench_second_look.py, 200 fresh upright demo
# coins): read score quantiles 1/5/10/50 % = 0.60/0.90/0.94/1.00, so 4.5 % of upright coins take the second look at
# 0.9 (3.0 % at 0.8, 10.5 % at 0.95); with the rules below none of those 200 answers changes (97.0 % exact).
# Photos turned without EXIF read 0.2-0.4, a coin small in its frame 0.3-0.9 or "not a coin".
SURE_READ = 0.9
# The second look replaces the first only when it is sure itself (read score >= SURE_READ, a coin) and this much
# surer than the first: upright demo coins read 0.5-0.9 were "improved" by 0.00-0.02 by turning the side without
# the date; with the margin alone, 1 of measure_reader's 200 fresh coins still went right -> wrong (1780 read 0.76,
# turned 180° 1774 at 0.89) and one wrong answer got wronger (1883 at 0.36 -> 1971 at 0.67). Photos turned back or
# coins cropped read 0.95-1.0.
MARGIN = 0.1
TURNS = (0, 90, 180, 270)  # degrees counter-clockwise, as torch.rot90 turns with k = 1..3
# A disc whose radius is below this share of the frame's shorter side is cropped (the demo coins fill their
# photos: their rim's radius is about 0.40 of the side).
SMALL_DISC = 0.33
# The crop keeps this much of the disc's radius on each side of its centre: the demo coins' own framing (their
# rim's radius is about 0.40 of the photo's side; 0.47 assumed first left the rim touching the crop's edges and
# 2 of 8 small-in-frame coins misread).
CROP_HALF = 1.0 / (2 * 0.40)
FIND_SIZE = 160  # the disc is searched on a grey copy this many pixels on its longer side
MIN_DISC = 0.1  # the smallest disc looked for, as a share of the shorter side (a coin on 5 % of a 4:3 frame: 0.15)
# A small disc must outvote every frame-filling one this many times: a coin small in a frame did by 10x (its rim
# against a plain table), the beads and digits of a coin that fills its photo by 1.6x at most.
DISTINCT = 2.5
DECODE_TARGET = 1024  # the second look decodes up to this many pixels on the shorter side (a cropped coin keeps detail)

Disc = tuple[float, float, float]  # centre x, centre y, radius, in the photo's pixels
Predict = Callable[[torch.Tensor, torch.Tensor], np.ndarray]


@dataclass(frozen=True)
class Looked:
    """The rows the reader answers with, and per row the path that answered (None: the first look)."""

    rows: np.ndarray
    notes: list[str | None]


def find_disc(image: Image.Image) -> Disc | None:
    """The coin's disc in a photo: (cx, cy, r) in its pixels, or None when no disc stands out.

    A circle vote on a grey copy ``FIND_SIZE`` px long: every strong edge pixel votes for the centres that lie
    along its gradient (both ways) at each tried radius, and a vote count is divided by the radius (a circle's
    edge pixels grow with it). A rim is the one edge whose gradients all point to one centre; a coin's relief,
    a table's light and its grain vote everywhere. The edges' centroid was tried first: the design inside the
    rim pulled it 30 px off centre on 256 px demo coins. Costs a few ms for a photo already decoded.
    """
    width, height = image.size
    scale = FIND_SIZE / max(width, height)
    small = image.convert("L").resize((max(8, round(width * scale)), max(8, round(height * scale))), Image.BILINEAR)
    grey = np.asarray(small.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32)
    rows, cols = grey.shape
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    gx[:, 1:-1] = grey[:, 2:] - grey[:, :-2]
    gy[1:-1, :] = grey[2:, :] - grey[:-2, :]
    magnitude = np.hypot(gx, gy)
    threshold = max(float(np.percentile(magnitude, 90)), 1e-3)
    ys, xs = np.nonzero(magnitude >= threshold)
    if len(xs) < 8:
        return None
    ux, uy = gx[ys, xs] / magnitude[ys, xs], gy[ys, xs] / magnitude[ys, xs]
    radii = np.geomspace(MIN_DISC * min(rows, cols), 0.55 * min(rows, cols), 24)
    best = (-1.0, 0.0, 0.0, 0.0)
    best_large = 0.0  # the best vote among discs that fill the frame
    for radius in radii:
        votes = np.zeros(rows * cols, dtype=np.float32)
        for sign in (1.0, -1.0):
            vx = np.rint(xs + sign * radius * ux).astype(np.int64)
            vy = np.rint(ys + sign * radius * uy).astype(np.int64)
            keep = (vx >= 0) & (vx < cols) & (vy >= 0) & (vy < rows)
            votes += np.bincount(vy[keep] * cols + vx[keep], minlength=rows * cols).astype(np.float32)
        plane = _box3(votes.reshape(rows, cols))
        peak = int(np.argmax(plane))
        score = float(plane.flat[peak]) / radius
        if radius >= SMALL_DISC * min(rows, cols):
            best_large = max(best_large, score)
        if score > best[0]:
            best = (score, float(peak % cols), float(peak // cols), float(radius))
    score, cx, cy, radius = best
    if radius < SMALL_DISC * min(rows, cols) and score < DISTINCT * best_large:
        return None  # a small circle (a bead, a digit) barely above the frame-filling ones: not a coin in a frame
    return cx / scale, cy / scale, radius / scale


def _box3(plane: np.ndarray) -> np.ndarray:
    """3 x 3 box sum (votes land a pixel or so off the true centre)."""
    padded = np.pad(plane, 1)
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]


def framed_view(data: bytes, config: TrainConfig, **limits: int) -> tuple[torch.Tensor, bool]:
    """The photo upright, its coin cropped when small in the frame: uint8 (C, size, size), and whether it was cropped.

    The crop is a square around the found disc (``CROP_HALF`` of its radius each side, padded with the photo's edge
    colour where it leaves the frame) and then goes through decoding.finish, the preprocessing shared by training
    and serving, so the reader sees the coin at its own resolution and framing.
    """
    photo = decoding.decode(data, target=DECODE_TARGET, **limits)
    upright = decoding.transpose(photo.image, photo.orientation)
    cropped = False
    # a photo under twice the reader's size has no pixels to spare: a crop would only be blown up (and a coin that
    # fills a small photo is where find_disc's beads and digits could pass for a small disc)
    disc = find_disc(upright) if min(upright.size) >= 2 * config.image_size else None
    if disc is not None:
        cx, cy, r = disc
        if r < SMALL_DISC * min(upright.size):
            half = CROP_HALF * r
            box = (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
            upright = crop_padded(upright, box)
            cropped = True
    image = decoding.finish(upright, size=config.image_size, grayscale=config.grayscale, orientation=1)
    return images.image_to_uint8(image), cropped


def crop_padded(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """image.crop(box), the part outside the photo filled with its median border colour, not black."""
    left, top, right, bottom = box
    if left >= 0 and top >= 0 and right <= image.width and bottom <= image.height:
        return image.crop(box)
    rgb = np.asarray(image.convert("RGB"))
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    colour = tuple(int(v) for v in np.median(border, axis=0))
    canvas = Image.new("RGB", (right - left, bottom - top), colour)
    canvas.paste(image.convert("RGB"), (-left, -top))
    return canvas


def unsure(rows: np.ndarray, calibration: Mapping[str, Any], sure_read: float = SURE_READ) -> np.ndarray:
    """(N,) bool: the pairs whose first read deserves a second look (not a coin, or read score below sure_read)."""
    if rows.ndim != 2 or rows.shape[1] <= 5:  # a regression ensemble has no scores to be unsure with
        return np.zeros(len(rows), dtype=bool)
    coin_threshold = float(calibration.get("coin_threshold", 0.5))
    return (rows[:, 3] < coin_threshold) | (rows[:, 4] < sure_read)


def sureness(rows: np.ndarray, calibration: Mapping[str, Any]) -> np.ndarray:
    """How sure the reader is of each row: its read score, minus one where the pair is judged not a coin."""
    coin_threshold = float(calibration.get("coin_threshold", 0.5))
    return rows[:, 4] - (rows[:, 3] < coin_threshold).astype(rows.dtype)


def look_again(
    predict: Predict,
    pairs: Sequence[tuple[bytes, bytes]],
    rows: np.ndarray,
    config: TrainConfig,
    calibration: Mapping[str, Any],
    *,
    sure_read: float = SURE_READ,
    **limits: int,
) -> Looked:
    """The first look's ``rows`` for ``pairs``, with every unsure pair read again cropped and turned (see module)."""
    rows = np.array(rows, copy=True)
    notes: list[str | None] = [None] * len(rows)
    todo = np.flatnonzero(unsure(rows, calibration, sure_read))
    if not len(todo):
        return Looked(rows, notes)
    transform = images.build_transforms(config, train=False)
    k = len(TURNS)
    for index in todo:
        (front, front_cropped), (back, back_cropped) = (framed_view(d, config, **limits) for d in pairs[index])
        fronts = torch.stack([torch.rot90(front, t, dims=(1, 2)) for t in range(k)])  # rot90 k=1: 90° ccw
        backs = torch.stack([torch.rot90(back, t, dims=(1, 2)) for t in range(k)])
        grid_front = fronts.repeat_interleave(k, 0)  # combination i: front turn i // k, back turn i % k
        grid_back = backs.repeat(k, 1, 1, 1)
        candidates = np.asarray(predict(transform.batch(grid_front), transform.batch(grid_back)), dtype=rows.dtype)
        scores = sureness(candidates, calibration)
        best = int(np.argmax(scores))
        if scores[best] < max(sureness(rows[index : index + 1], calibration)[0] + MARGIN, sure_read):
            continue  # the second look answers only when it is sure, and surer than the first
        rows[index] = candidates[best]
        notes[index] = _note(TURNS[best // k], TURNS[best % k], front_cropped, back_cropped)
    return Looked(rows, notes)


def _note(front_turn: int, back_turn: int, front_cropped: bool, back_cropped: bool) -> str:
    """What the second look changed, for the prediction's details: "front turned 90°, back cropped", ..."""
    parts = []
    for side, turn, cropped in (("front", front_turn, front_cropped), ("back", back_turn, back_cropped)):
        # the photo was turned back by ``turn`` counter-clockwise: it had been turned (360 - turn) % 360
        did = [f"turned {(360 - turn) % 360}°"] if turn else []
        if cropped:
            did.append("cropped")
        if did:
            parts.append(f"{side} {' and '.join(did)}")
    return ", ".join(parts) or "read again"
