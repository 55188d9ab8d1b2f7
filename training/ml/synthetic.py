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

The stages live in modules of their own: ``synthetic_primitives`` (era cues, drawing helpers), ``synthetic_faces``
(the design and each face's height map), ``synthetic_photos`` (shading and photographing); this module plans coins
and writes them, and re-exports what other modules use.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

# The generator's parts, by stage; what other modules use is re-exported here, so `synthetic.<name>` keeps working.
from training.ml.synthetic_faces import CoinSpec as CoinSpec
from training.ml.synthetic_faces import draw_rim as draw_rim
from training.ml.synthetic_faces import draw_text as draw_text
from training.ml.synthetic_faces import height_map
from training.ml.synthetic_photos import photograph_coin as photograph_coin
from training.ml.synthetic_photos import shade_relief as shade_relief
from training.ml.synthetic_photos import table_background as table_background
from training.ml.synthetic_primitives import coin_font as coin_font
from training.ml.synthetic_primitives import gaussian_blur as gaussian_blur
from training.ml.synthetic_primitives import lowfreq_noise as lowfreq_noise
from training.ml.synthetic_primitives import metal_colour as metal_colour
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
        h, date_xy = height_map(spec, side, render, rng)
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
