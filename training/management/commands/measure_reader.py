"""`manage.py measure_reader`: how well the Production model reads dates, on coins it never saw.

Scores freshly generated coins (a seed never used in training) through the registered pyfunc exactly as a client
would send them (the Model-Serving JSON, base64 photos), and prints, beside the constant baseline: exact years
(|error| <= 1), MAE, the interval's coverage and median width (legible, blurred, dark and old worn coins), the
share of coins wrongly rejected, the share of generated non-coin photos rejected (including a kind training never
saw), and the same reading figures on the second mint ("northern") when asked.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import mlflow
import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand
from PIL import Image, ImageFilter
from tqdm import tqdm

from registry.gateway import mlflow_ready
from training.ml import negatives, synthetic

CHUNK = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _degrade(data: bytes, how: str) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if how == "blur":
        image = image.filter(ImageFilter.GaussianBlur(2.0))
    elif how == "dark":
        pixels = np.asarray(image, dtype=np.float32) * 0.22
        pixels += np.random.default_rng(len(data)).normal(0, 4, pixels.shape)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


@dataclass
class Scored:
    years: np.ndarray  # true years
    details: list[dict]

    @property
    def answered(self) -> np.ndarray:
        return np.array(["rejected" not in d for d in self.details])

    def predicted(self) -> np.ndarray:
        return np.array([d.get("year", np.nan) for d in self.details], dtype=np.float64)

    def guessed(self) -> np.ndarray:
        return np.array([d["guess"] for d in self.details], dtype=np.float64)


class Command(BaseCommand):
    help = (
        "Measure the Production model on freshly generated coins (through the registered pyfunc): exact years, "
        "MAE beside the constant baseline, interval coverage and width, not-a-coin rejection."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--count", type=int, default=1000, help="fresh classic coins (default 1000)")
        parser.add_argument("--seed", type=int, default=990_001, help="generator seed, never used in training")
        parser.add_argument("--negatives", type=int, default=200, help="fresh non-coin photos (default 200)")
        parser.add_argument("--degraded", type=int, default=200, help="coins per degradation (blur, dark)")
        parser.add_argument("--northern", type=int, default=0, help="fresh coins of the second mint (default 0)")
        parser.add_argument("--size", type=int, default=synthetic.DEFAULT_SIZE, help="photo size in pixels")
        parser.add_argument("--model-version", type=int, help="a registered version instead of Production")

    def handle(self, *args, **options) -> None:
        mlflow_ready()
        where = f"/{options['model_version']}" if options["model_version"] else "@production"
        uri = f"models:/{settings.MLFLOW_MODEL_NAME}{where}"
        pyfunc = mlflow.pyfunc.load_model(uri)
        model = pyfunc.unwrap_python_model()
        self.stdout.write(f"scoring through the registered pyfunc {uri}")

        def score(pairs: list[tuple[bytes, bytes]], desc: str) -> list[dict]:
            details, years = [], []
            for start in tqdm(range(0, len(pairs), CHUNK), desc=desc, unit="batch", leave=False):
                payload = [
                    {"front_image_base64": _b64(f), "back_image_base64": _b64(b)}
                    for f, b in pairs[start : start + CHUNK]
                ]
                years.extend(pyfunc.predict(payload))  # the contract: one year (or None) per input
                chunk = model.predict(payload, params={"details": True})
                # the model's best guess even where it gives no year, so that MAE can be taken over every coin
                guesses = model.predictor.predict_bytes(pairs[start : start + CHUNK])[:, 0]
                details.extend({**d, "guess": int(round(float(g)))} for d, g in zip(chunk, guesses, strict=True))
            for year, detail in zip(years, details, strict=True):
                assert year == detail.get("year") if "rejected" not in detail else year is None
            return details

        count, seed, size = options["count"], options["seed"], options["size"]
        coins = list(synthetic.iter_coins(count, seed, size=size))
        if coins:
            self._fresh(coins, score, options["degraded"])

        n_neg = options["negatives"]
        if n_neg:
            photos = [
                negatives.generate_negative_jpeg(seed * 7 + i, size=size, kinds=negatives.ALL_KINDS)
                for i in range(n_neg)
            ]
            pairs = [(photos[i], photos[(i + 1) % n_neg]) for i in range(n_neg)]
            rejected = np.array(["rejected" in d for d in score(pairs, "not coins")])
            held = [
                negatives.generate_negative_jpeg(seed * 11 + i, size=size, kinds=negatives.HELD_OUT_KINDS)
                for i in range(50)
            ]
            held_rejected = np.array(
                ["rejected" in d for d in score(list(zip(held, held[1:] + held[:1], strict=True)), "clocks")]
            )
            self.stdout.write(
                f"not a coin: {rejected.mean():.1%} of {n_neg} non-coin photo pairs rejected (all kinds); "
                f"{held_rejected.mean():.1%} of 50 clock faces (a kind training never saw)"
            )
        if options["northern"]:
            northern = list(synthetic.iter_coins(options["northern"], seed + 1, size=size, style="northern"))
            n_truth = np.array([y for _f, _b, y in northern], dtype=np.float64)
            scored = Scored(n_truth, score([(f, b) for f, b, _ in northern], "northern mint"))
            self._report("northern mint", scored, baseline_year=float(np.median(n_truth)))

    def _fresh(self, coins, score, degraded_count: int) -> None:
        truth = np.array([y for _f, _b, y in coins], dtype=np.float64)
        fresh = Scored(truth, score([(f, b) for f, b, _ in coins], "fresh coins"))
        self._report("fresh coins", fresh, baseline_year=float(np.median(truth)))
        for label, chosen in (
            ("old, worn coins (before 1780)", truth < 1780),
            ("legible coins (1850 on)", truth >= 1850),
        ):
            if chosen.any():
                self._widths(label, Scored(truth[chosen], [fresh.details[i] for i in np.flatnonzero(chosen)]))
        for how in ("blur", "dark"):
            subset = coins[:degraded_count]
            if not subset:
                continue
            pairs = [(_degrade(f, how), _degrade(b, how)) for f, b, _ in subset]
            degraded = Scored(truth[: len(subset)], score(pairs, how))
            self._report(f"{how} photos", degraded, baseline_year=float(np.median(truth)))

    def _report(self, label: str, scored: Scored, *, baseline_year: float) -> None:
        answered = scored.answered
        predicted = scored.predicted()
        error = np.abs(predicted - scored.years)
        exact = float(np.mean(np.where(answered, error <= 1, False)))
        mae = float(np.nanmean(error)) if answered.any() else float("nan")
        mae_all = float(np.mean(np.abs(scored.guessed() - scored.years)))
        baseline = float(np.mean(np.abs(scored.years - baseline_year)))
        self.stdout.write(
            f"{label}: n={len(scored.years)}  exact (|error| <= 1, rejected count as wrong) {exact:.1%}  "
            f"MAE {mae:.2f} y on the answered, {mae_all:.2f} y on all (best guess where rejected); constant "
            f"baseline {baseline:.2f}  rejected {1 - answered.mean():.1%}"
        )
        self._widths(label, scored)

    def _widths(self, label: str, scored: Scored) -> None:
        rows = [(d, y) for d, y in zip(scored.details, scored.years, strict=True) if "rejected" not in d]
        if not rows:
            return
        low = np.array([d["low"] for d, _ in rows])
        high = np.array([d["high"] for d, _ in rows])
        years = np.array([y for _, y in rows])
        level = rows[0][0].get("level", float("nan"))
        coverage = float(np.mean((low <= years) & (years <= high)))
        width = high - low + 1
        self.stdout.write(
            f"  interval on {label}: level {level:.0%}, coverage {coverage:.1%}, median width {np.median(width):.0f} "
            f"years (90th percentile {np.percentile(width, 90):.0f})"
        )
