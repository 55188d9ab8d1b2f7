"""Fit the OCR fusion's weights (training.ml.fusion.FusionWeights) on held-out generated coins, and print them.

    .venv/bin/python scripts/calibrate_ocr.py MODEL_ARTIFACTS_DIR [--coins 40]

MODEL_ARTIFACTS_DIR is a registered version's artifacts folder (e.g. var/model-cache/coin-year/v1-*/artifacts).
Held-out sets, all from training's own generators at seeds training never used (never the tests-only renderer or
phone set, which measure_reader keeps for measuring): classic coins; "northern" coins (a mint the make-run model was
not trained on: the stand-in for an unfamiliar design); classic coins turned 90/180/270 degrees without EXIF; classic
coins small in a 1,600 px frame; and generated non-coin pairs. Every pair goes through the reader (first and second
look) and, whatever its score, through the OCR; the weights are then searched on a grid (numpy only), maximising
exact - 5 x confidently wrong - 3 x non-coins accepted, and the OCR's precision per case is printed.
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.ml import fusion, negatives, ocr, second_look, synthetic  # noqa: E402
from training.ml.tracking.loading import predictor_from_files  # noqa: E402
from training.ml.tracking.packaging import ARTIFACT_FILES  # noqa: E402

SEED = 661_001  # never used by training, pretraining, measure_reader or the benches


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=88)
    return out.getvalue()


def _turned(data: bytes, degrees: int) -> bytes:
    return _jpeg(Image.open(io.BytesIO(data)).rotate(degrees, expand=True))


def _small(data: bytes, rng: np.random.Generator) -> bytes:
    coin = Image.open(io.BytesIO(data)).convert("RGB")
    table = Image.new("RGB", (1600, 1200), tuple(int(v) for v in rng.integers(60, 200, 3)))
    side = int(rng.integers(300, 420))
    table.paste(coin.resize((side, side)), (int(rng.integers(0, 1600 - side)), int(rng.integers(0, 1200 - side))))
    return _jpeg(table)


def held_out_sets(count: int) -> dict[str, list[tuple[bytes, bytes, int | None]]]:
    rng = np.random.default_rng(SEED)
    classic = list(synthetic.iter_coins(count, SEED))
    sets = {
        "classic": classic,
        "northern": list(synthetic.iter_coins(count, SEED + 1, style="northern")),
        "turned": [(_turned(f, t), _turned(b, t), y) for (f, b, y), t in zip(classic, itertools.cycle((90, 180, 270)))],
        "small in frame": [(_small(f, rng), _small(b, rng), y) for f, b, y in classic],
    }
    photos = [negatives.generate_negative_jpeg(SEED + i, kinds=negatives.ALL_KINDS) for i in range(count)]
    sets["not coins"] = [(photos[i], photos[(i + 1) % count], None) for i in range(count)]
    return sets


def score(rows: np.ndarray, truth: list[int | None], calibration) -> dict[str, float]:
    coin_ok = rows[:, 3] >= float(calibration.get("coin_threshold", 0.5))
    read_ok = rows[:, 4] >= float(calibration.get("read_threshold", 0.0))
    answered = coin_ok & read_ok
    is_coin = np.array([t is not None for t in truth])
    error = np.array([abs(r[0] - t) if t is not None else np.inf for r, t in zip(rows, truth, strict=True)])
    top = rows[:, 5:].max(1)
    return {
        "exact": float(np.mean(answered & (error <= 1.5))) if is_coin.any() else float("nan"),
        "confidently_wrong": float(np.mean(answered & (error > 1.5) & (top > 0.9) & is_coin)),
        "not_a_coin": float(np.mean(~coin_ok)),
        "accepted_non_coins": float(np.mean(answered & ~is_coin)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--coins", type=int, default=40)
    args = parser.parse_args()
    files = {key: str(args.artifacts / name) for key, name in ARTIFACT_FILES.items()}
    predictor, config, _backend, calibration = predictor_from_files(files)
    calibration = calibration.get("calibration") or calibration
    cached = {}
    started = time.monotonic()
    for name, coins in held_out_sets(args.coins).items():
        pairs = [(f, b) for f, b, _ in coins]
        rows = predictor.predict_bytes(pairs)
        looked = second_look.look_again(predictor.predict, pairs, rows, config, calibration)
        readings = [ocr.read_pair(f, b, config.year_min, config.year_max) for f, b in pairs]
        truth = [y for _f, _b, y in coins]
        cached[name] = (looked.rows, readings, truth)
        found = [(r, t) for r, t in zip(readings, truth, strict=True) if r.year is not None]
        right = sum(t is not None and abs(r.year - t) <= 1 for r, t in found)
        both = [(r, t) for r, t in found if r.photos >= 2]
        print(
            f"{name}: OCR read a year on {len(found)}/{len(coins)} pairs, {right} right; both photos alike on "
            f"{len(both)} ({sum(t is not None and abs(r.year - t) <= 1 for r, t in both)} right); OCR ms p50 "
            f"{np.median([r.ms for r in readings]):.0f}; reader alone {score(looked.rows, truth, calibration)}"
        )
    print(f"(read in {time.monotonic() - started:.0f} s)")

    def objective(weights: fusion.FusionWeights) -> tuple[float, dict]:
        total, per = 0.0, {}
        for name, (rows, readings, truth) in cached.items():
            fused = rows.copy()
            for i in np.flatnonzero(second_look.unsure(rows, calibration)):
                fused[i], _ = fusion.fuse_row(rows[i], readings[i], readings[i].photos, config, calibration, weights)
            figures = score(fused, truth, calibration)
            per[name] = figures
            if name == "not coins":
                total -= 3 * figures["accepted_non_coins"]
            else:
                total += figures["exact"] - 5 * figures["confidently_wrong"]
        return total, per

    default_value, default_per = objective(fusion.FusionWeights())
    best = (default_value, fusion.FusionWeights(), default_per)  # the defaults win ties: a tie is no finding
    for q_one, q_both, coin_one, coin_both, temper in itertools.product(
        (0.5, 0.7, 0.85, 0.95), (0.9, 0.97, 0.995), (0.0, 0.3, 0.6), (0.6, 0.9, 0.98), (0.1, 0.3, 1.0)
    ):
        weights = replace(
            fusion.FusionWeights(), q_one=q_one, q_both=q_both, coin_one=coin_one, coin_both=coin_both, temper=temper
        )
        value, per = objective(weights)
        if value > best[0]:
            best = (value, weights, per)
    value, weights, per = best
    print(f"best {weights} (objective {value:.3f})")
    for name, figures in per.items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.1%}" for k, v in figures.items()))
    print(f"defaults {fusion.FusionWeights()}: objective {objective(fusion.FusionWeights())[0]:.3f}")


if __name__ == "__main__":
    main()
