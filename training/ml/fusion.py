"""Fusing the OCR's reading (training.ml.ocr) with the learned reader's year distribution.

Why: the learned reader is sure and right on the coins our generator draws, and on coins of an unfamiliar design it
is unsure, or calls them "not a coin" (issue 22). A general OCR engine reads many of those dates, and is sometimes
wrong by a digit; neither reader should simply overrule the other.

How: the OCR's year ``o`` is evidence with a likelihood ratio. If the OCR reads the true year with probability q and
otherwise names one of the other Y - 1 years at random, then P(o | year) is q at ``o`` and (1 - q) / (Y - 1)
elsewhere, and Bayes' rule multiplies the reader's p(year) by that. With q = 0.9 and Y = 326 the ratio is about
2,900: a reader that hesitates (p(o) near uniform, 0.003) ends near 0.9 at o, a reader sure of another year (p = 0.99
there, 1e-5 at o) is barely moved. The reader's distribution is first flattened by an exponent ``TEMPER`` where the
pair is judged not a coin (its p(year) was learnt on coins it recognises; where it does not, its sureness is not
evidence). q depends on whether both photos' OCR agree on the year.

A plausible year read confidently is also evidence of a coin: the fused coin score is 1 - (1 - coin)(1 - c), c the
OCR's coin evidence (its precision of "a coin" when it reads a year), so a coin both photos' OCR read alike is not
called "not a coin" because the coin head is unsure of an unfamiliar design.

When: only for pairs the reader (after the second look) is still unsure of (second_look.unsure): on sure pairs the
OCR could only confirm, and it costs 100-500 ms a photo on the shared 2-core machine against the reader's 10 ms.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.ml import ocr, second_look
from training.ml.config import TrainConfig

DETAIL_COLUMNS = 5  # ensemble.DETAIL_COLUMNS (year, low, high, coin score, read score), repeated to avoid a cycle
READER = "reader"
OCR = "ocr"


@dataclass(frozen=True)
class FusionWeights:
    """How much an OCR reading counts. See the module docstring; fitted by scripts/calibrate_ocr.py."""

    q_one: float = 0.85  # P(the OCR's year is right) when one photo read a year
    q_both: float = 0.97  # ... when both photos read the same year
    min_confidence: float = 0.8  # readings less confident than this are ignored
    coin_one: float = 0.3  # coin evidence of a year read on one photo (0.6 let a document with a year pass)
    coin_both: float = 0.95  # ... on both photos, alike
    temper: float = 0.3  # exponent on the reader's p(year) where the pair is judged not a coin


@dataclass(frozen=True)
class Fused:
    """What serving answers: rows as the ensemble's (fused where the OCR ran), per row the second look's note,
    which reader(s) answered ("reader", "ocr", "reader+ocr") and the OCR's reading for the details (or None)."""

    rows: np.ndarray
    notes: list[str | None]
    readers: list[str]
    ocr: list[dict[str, Any] | None]


def enabled() -> bool:
    """The OCR runs unless COINSITE_OCR is 0/false/off, or the package is missing (then the reader answers alone)."""
    flag = os.environ.get("COINSITE_OCR", "1").strip().lower()
    return flag not in {"0", "false", "off", "no"} and ocr.available()


def fuse_row(
    row: np.ndarray,
    reading: ocr.OcrReading,
    agreeing: int,
    config: TrainConfig,
    calibration: Mapping[str, Any],
    weights: FusionWeights = FusionWeights(),
) -> tuple[np.ndarray, str]:
    """One ensemble output row with the OCR's reading folded in, and which reader(s) it now rests on.

    ``agreeing``: how many photos read ``reading.year`` (1 or 2).
    """
    row = np.asarray(row, dtype=np.float64).copy()
    if len(row) <= DETAIL_COLUMNS or reading.year is None or reading.confidence < weights.min_confidence:
        return row, READER
    years = np.arange(config.year_min, config.year_max + 1)
    p = np.clip(row[DETAIL_COLUMNS:], 1e-12, None)
    coin_threshold = float(calibration.get("coin_threshold", 0.5))
    if row[3] < coin_threshold:
        p = p**weights.temper
    p = p / p.sum()
    q = weights.q_both if agreeing >= 2 else weights.q_one
    likelihood = np.full(len(years), (1 - q) / max(len(years) - 1, 1))
    likelihood[years == reading.year] = q
    posterior = p * likelihood
    posterior = posterior / posterior.sum()
    coin_evidence = weights.coin_both if agreeing >= 2 else weights.coin_one
    coin = 1 - (1 - float(row[3])) * (1 - coin_evidence)
    top = int(np.argmax(posterior))
    year = float(years[top])
    order = np.argsort(-posterior)
    ordered = posterior[order]
    inside = (np.cumsum(ordered) - ordered) < float(config.interval_level)
    low, high = float(years[order][inside].min()), float(years[order][inside].max())
    read = float(posterior[np.abs(years - year) <= 1].sum())
    fused = np.concatenate([[year, low, high, coin, read], posterior])
    by_reader = abs(int(np.argmax(p)) - top) <= 1
    by_ocr = abs(int(year) - reading.year) <= 1
    readers = f"{READER}+{OCR}" if by_reader and by_ocr else (OCR if by_ocr else READER)
    return fused.astype(row.dtype), readers


def read_with_ocr(
    pairs: Sequence[tuple[bytes, bytes]],
    looked: second_look.Looked,
    config: TrainConfig,
    calibration: Mapping[str, Any],
    *,
    weights: FusionWeights = FusionWeights(),
    run: bool | None = None,
    **limits: int,
) -> Fused:
    """The second look's rows, with the OCR read and fused on every pair the reader is still unsure of."""
    rows = np.array(looked.rows, copy=True)
    readers = [READER] * len(rows)
    readings: list[dict[str, Any] | None] = [None] * len(rows)
    if run is None:
        run = enabled()
    if not run or rows.ndim != 2 or rows.shape[1] <= DETAIL_COLUMNS:
        return Fused(rows, list(looked.notes), readers, readings)
    for index in np.flatnonzero(second_look.unsure(rows, calibration)):
        front, back = pairs[index]
        reading = ocr.read_pair(front, back, config.year_min, config.year_max, **limits)
        readings[index] = reading.as_details()
        if reading.year is None:
            continue
        rows[index], readers[index] = fuse_row(rows[index], reading, reading.photos, config, calibration, weights)
    return Fused(rows, list(looked.notes), readers, readings)


def annotate(details: dict[str, Any], fused: Fused, index: int) -> dict[str, Any]:
    """Add to one input's details (ensemble.prediction_details) the second look's note, which reader(s) answered and
    the OCR's reading: the one place serving and the pyfunc both call, so their answers cannot differ."""
    if fused.notes[index]:
        details["second_look"] = fused.notes[index]
    details["readers"] = fused.readers[index]
    if fused.ocr[index] is not None:
        details["ocr"] = fused.ocr[index]
    return details
