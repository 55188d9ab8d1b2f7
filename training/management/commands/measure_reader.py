"""`manage.py measure_reader`: how well the Production model reads dates, on coins it never saw.

Scores freshly generated coins (a seed never used in training) through the registered pyfunc exactly as a client
would send them (the Model-Serving JSON, base64 photos), and prints, beside the constant baseline: exact years
(|error| <= 1), MAE, the interval's coverage and median width (legible, blurred, dark and old worn coins), the
share of coins wrongly rejected, the share of generated non-coin photos rejected (including a kind training never
saw), and the same reading figures on the second mint ("northern") when asked.

With ``--renderer N`` and ``--phone N`` it also reads coins that no generator of training drew: N coins of the
tests-only renderer (tests/generalisation/renderer.py: other drawing code, fonts, layouts, relief, metals,
backgrounds, perspective) and N fresh demo coins photographed as phones do (tests/generalisation/phone.py: turned
with and without EXIF, small in a 2,000-4,000 px frame, motion blur, glare, strong JPEG, a finger, the date painted
over), each set with exact (+-1 y), not a coin, unreadable, confidently wrong (top p > 0.9 and |error| > 1) and the
interval's coverage among the answered, the phone set per degradation too. Both live under tests/ so that training
can never import them (an import-linter contract forbids it); this command imports them only when asked, and a
deployment, which ships without tests/, answers with a CommandError that says so.
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass

import mlflow
import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
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
        parser.add_argument(
            "--renderer", type=int, default=0, help="coins of the tests-only renderer (needs tests/; default 0)"
        )
        parser.add_argument(
            "--phone", type=int, default=0, help="phone-degraded fresh demo coins (needs tests/; default 0)"
        )

    def handle(self, *args, **options) -> None:
        if options["renderer"] or options["phone"]:
            renderer, phone = _generalisation_modules()  # checked first: a deployment without tests/ fails fast
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
        if options["renderer"] or options["phone"]:
            self._generalisation(renderer, phone, score, options["renderer"], options["phone"], seed)

    def _generalisation(self, renderer, phone, score, n_renderer: int, n_phone: int, seed: int) -> None:
        rows, seconds = _generalisation_rows(renderer, phone, score, n_renderer, n_phone, seed)
        self.stdout.write("coins that no generator of training drew (tests/generalisation), through the pyfunc:")
        self.stdout.write(TABLE_HEAD)
        for label, outcome in rows:
            self.stdout.write(outcome.row(label))
        self.stdout.write(
            "  (made and read in " + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()) + "; a painted-"
            'over date is read right when it answers "unreadable")'
        )

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


# --- coins no generator of training drew ----------------------------------------------------------------------------


def _generalisation_modules():
    """tests/generalisation's renderer and phone degradations, imported on demand."""
    try:
        from tests.generalisation import phone, renderer  # tests-only code, absent from a deployment: on demand
    except ImportError as error:
        raise CommandError(
            "--renderer and --phone need tests/generalisation from a source checkout (a deployment ships without "
            f"tests/): run manage.py from the repository root, or leave both at 0 ({error})"
        ) from error
    return renderer, phone


@dataclass
class Outcome:
    """Shares over one set of pairs: what a collector would have been told."""

    n: int
    exact: float  # |error| <= 1, rejected counted as wrong
    not_a_coin: float
    unreadable: float
    confidently_wrong: float  # answered with top p > 0.9 and |error| > 1, share of all
    coverage: float  # true year inside the interval, share of the answered
    level: float
    ocr_ran: float = 0.0  # share of pairs the OCR read (training.ml.fusion: only where the reader was unsure)
    by_ocr: float = 0.0  # share of pairs whose answer rests on the OCR ("ocr" or "reader+ocr" among the readers)

    @classmethod
    def of(cls, years: np.ndarray, details: list[dict]) -> Outcome:
        answered = [(d, y) for d, y in zip(details, years, strict=True) if "rejected" not in d]
        error = np.array([abs(d["year"] - y) for d, y in answered], dtype=np.float64)
        top = np.array([d["alternatives"][0]["p"] if d.get("alternatives") else 0.0 for d, _ in answered])
        covered = [d["low"] <= y <= d["high"] for d, y in answered]
        n = len(details)
        return cls(
            n=n,
            exact=float(np.sum(error <= 1) / n) if n else float("nan"),
            not_a_coin=float(np.mean([d.get("rejected") == "not_a_coin" for d in details])) if n else float("nan"),
            unreadable=float(np.mean([d.get("rejected") == "unreadable" for d in details])) if n else float("nan"),
            confidently_wrong=float(np.sum((top > 0.9) & (error > 1)) / n) if n else float("nan"),
            coverage=float(np.mean(covered)) if covered else float("nan"),
            level=float(answered[0][0].get("level", float("nan"))) if answered else float("nan"),
            ocr_ran=float(np.mean(["ocr" in d for d in details])) if n else float("nan"),
            by_ocr=float(np.mean(["ocr" in d.get("readers", "") and "rejected" not in d for d in details]))
            if n
            else float("nan"),
        )

    def row(self, label: str) -> str:
        level = f"{self.level:.0%}" if np.isfinite(self.level) else "-"
        return (
            f"| {label} | {self.n} | {self.exact:.1%} | {self.not_a_coin:.1%} | {self.unreadable:.1%} | "
            f"{self.confidently_wrong:.1%} | {self.coverage:.1%} ({level}) | {self.ocr_ran:.0%} / {self.by_ocr:.0%} |"
        )


TABLE_HEAD = (
    "| photos | n | exact (±1 y) | not a coin | unreadable | confidently wrong (p > 0.9, >1 y off) "
    "| interval coverage among answered (level) | OCR ran / answered with it |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- |"
)


def _generalisation_rows(renderer, phone, score, n_renderer: int, n_phone: int, seed: int):
    """(label, Outcome) rows of the renderer's coins (and per layout) and the phone-degraded demo coins (readable
    kinds together, then per kind; the painted-over coins, whose truth is "unreadable", apart), and the seconds each
    set took to make and read."""
    rows, seconds = [], {}
    if n_renderer:
        started = time.monotonic()
        coins = list(tqdm(renderer.iter_pairs(n_renderer, seed), total=n_renderer, desc="renderer coins", unit="coin"))
        details = score([(c.front, c.back) for c in coins], "renderer coins")
        years = np.array([c.year for c in coins])
        rows.append(("coins of the tests-only renderer", Outcome.of(years, details)))
        for layout in renderer.LAYOUTS:
            chosen = [i for i, c in enumerate(coins) if c.layout == layout]
            if chosen:
                rows.append((f"  date {layout}", Outcome.of(years[chosen], [details[i] for i in chosen])))
        seconds["renderer"] = time.monotonic() - started
    if n_phone:
        started = time.monotonic()
        pairs = list(tqdm(phone.demo_phone_pairs(n_phone, seed + 2), total=n_phone, desc="phone photos", unit="coin"))
        details = score([(p.front, p.back) for p in pairs], "phone photos")
        years = np.array([p.year for p in pairs])
        readable = [i for i, p in enumerate(pairs) if p.readable]
        rows.append(
            (
                "demo coins photographed as phones do (readable kinds)",
                Outcome.of(years[readable], [details[i] for i in readable]),
            )
        )
        for kind in phone.KINDS:
            chosen = [i for i, p in enumerate(pairs) if p.kind == kind]
            if chosen:
                label = f"  {kind} (truth: unreadable)" if kind in phone.UNREADABLE_KINDS else f"  {kind}"
                rows.append((label, Outcome.of(years[chosen], [details[i] for i in chosen])))
        seconds["phone"] = time.monotonic() - started
    return rows, seconds
