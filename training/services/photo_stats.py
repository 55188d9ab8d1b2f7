"""Image statistics of coin photos and the distance between two sets of them: the input-drift half of the owners'
monitoring page.

A model that reads dates from photos fails quietly when the photos change (a darker room, a new phone, a blurred
batch): its answers keep coming, only worse, and the curators' labels that reveal it arrive days later. Simple
statistics of the photos themselves (brightness, contrast, colour, sharpness) change at once, so the page compares
those of the photos served each week with those of the coins the version was trained on.

Each coin is measured once and kept (training.models.CoinPhotoStats): the stored 320 px thumbnail when there is one,
else the photo, decoded through the serving path's bounded decode (training.ml.decoding) straight to a 64 px centred
square. Measured on the 2-core development machine (both sides of a coin, photos of noise, JPEG's worst case):
2.6 ms from 320 px thumbnails, 5.4 ms from 600 px photos, 0.14 s from 12 MP photos that have no thumbnail (coins
stored before thumbnails existed). The page never measures: a background refresh does
(training.services.monitoring_snapshot), within a time budget (MONITORING_REFRESH_STATS_SECONDS) that keeps a first
refresh of a long history bounded; the rest is measured by the next refreshes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db.models.fields.files import FieldFile

from predictions.models import Coin
from training.ml import decoding
from training.ml.photo_errors import ImageError

from ..models import CoinPhotoStats

# What is measured, in the order the page shows it.
FEATURES = ("brightness", "contrast", "saturation", "sharpness", "red", "green", "blue")
STATS_PX = 64
# Standardised mean differences under this are noise between two samples of the same photos (two halves of the
# demo coins differ by 0.05-0.1); over 0.5 is a different population of photos (a rule of thumb of effect sizes).
SMD_NOTABLE = 0.25
SMD_LARGE = 0.5
# Population stability index: under 0.1 stable, 0.1-0.25 moderate shift, over 0.25 significant (credit scoring's
# rule of thumb, the usual reading of PSI).
PSI_BINS = 10
PSI_SIGNIFICANT = 0.25
_QUERY_CHUNK = 900  # ids per IN (...) query: under SQLite's old limit of 999 parameters
_SD_FLOOR = 1e-3  # a feature that does not vary at all in either set: differences are read against this


def image_statistics(pixels: np.ndarray) -> dict[str, float]:
    """The FEATURES of one RGB image (H x W x 3, uint8), as fractions 0..1."""
    rgb = pixels.astype(np.float32) / 255.0
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0)
    laplacian = -4 * luma[1:-1, 1:-1] + luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:]
    return {
        "brightness": float(luma.mean()),
        "contrast": float(luma.std()),
        "saturation": float(saturation.mean()),
        "sharpness": float(np.abs(laplacian).mean()),
        "red": float(rgb[..., 0].mean()),
        "green": float(rgb[..., 1].mean()),
        "blue": float(rgb[..., 2].mean()),
    }


def _side_pixels(thumbnail: FieldFile, photo: FieldFile) -> tuple[np.ndarray, str]:
    """One side at STATS_PX, from its thumbnail when stored (a tenth of the bytes), else from the photo."""
    for field, source in ((thumbnail, CoinPhotoStats.Source.THUMBNAIL), (photo, CoinPhotoStats.Source.PHOTO)):
        if not field or not field.name:
            continue
        try:
            with field.storage.open(field.name, "rb") as handle:
                data = handle.read()
        except OSError:
            continue  # a thumbnail file gone: the photo may still be there
        decoded = decoding.decode(data, target=STATS_PX, limits=settings.COINSITE_PHOTO_LIMITS)
        image = decoded.model_image(size=STATS_PX, grayscale=False)
        return np.asarray(image, dtype=np.uint8), source
    raise FileNotFoundError("neither the thumbnail nor the photo file is stored")


def coin_photo_stats_measure(coin: Coin) -> CoinPhotoStats:
    """Measure one coin (both sides averaged); an unreadable photo gives a row with the error and no numbers."""
    try:
        front, source = _side_pixels(coin.front_thumbnail, coin.front_image)
        back, back_source = _side_pixels(coin.back_thumbnail, coin.back_image)
    except (ImageError, OSError) as error:
        return CoinPhotoStats(coin=coin, source=CoinPhotoStats.Source.NONE, error=str(error)[:300])
    sides = (image_statistics(front), image_statistics(back))
    values = {name: (sides[0][name] + sides[1][name]) / 2 for name in FEATURES}
    if back_source != source:
        source = CoinPhotoStats.Source.PHOTO
    return CoinPhotoStats(coin=coin, source=source, **values)


def coins_photo_stats(
    *, coin_ids: Iterable[int], budget_seconds: float | None = None
) -> tuple[dict[int, CoinPhotoStats], int]:
    """The statistics of `coin_ids` (measured ones only), measuring and storing those not measured yet.

    Measuring stops once `budget_seconds` are spent (None: no limit): returns (stats by coin id, how many coins are
    left unmeasured), so a page can say its figures are based on fewer photos and measure the rest next time.
    """
    wanted = list(dict.fromkeys(coin_ids))
    known: dict[int, CoinPhotoStats] = {}
    for start in range(0, len(wanted), _QUERY_CHUNK):
        chunk = wanted[start : start + _QUERY_CHUNK]
        known.update({row.coin_id: row for row in CoinPhotoStats.objects.filter(coin_id__in=chunk)})
    missing = [coin_id for coin_id in wanted if coin_id not in known]
    coins = Coin.objects.in_bulk(missing)  # in_bulk batches its query under the database's parameter limit
    measured: list[CoinPhotoStats] = []
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    left = 0
    for index, coin_id in enumerate(missing):  # in the caller's order: the most needed first
        if deadline is not None and time.monotonic() > deadline:
            left = len(missing) - index
            break
        if coin_id in coins:
            measured.append(coin_photo_stats_measure(coins[coin_id]))
    if measured:
        CoinPhotoStats.objects.bulk_create(measured, ignore_conflicts=True)  # a concurrent page measured some too
        known.update({row.coin_id: row for row in measured})
    usable = {coin_id: row for coin_id, row in known.items() if row.brightness is not None}
    return usable, left


def sample_evenly(ids: Sequence[int], limit: int) -> list[int]:
    """At most `limit` of `ids`, spread evenly over them in id order: the same coins on every visit (so their
    statistics are measured once), and every part of the week or of the training set represented."""
    ordered = sorted(set(ids))
    if len(ordered) <= limit:
        return ordered
    step = len(ordered) / limit
    return [ordered[int(index * step)] for index in range(limit)]


@dataclass(frozen=True)
class FeatureDrift:
    """One statistic of the served photos against the training photos."""

    feature: str
    serving_mean: float
    training_mean: float
    smd: float  # standardised mean difference: (serving - training) / pooled standard deviation
    psi: float  # population stability index over the training set's deciles


def feature_drift(feature: str, serving: Sequence[float], training: Sequence[float]) -> FeatureDrift:
    """How far the served values of `feature` are from the training values: SMD (a shift of the mean, in units of
    the spread) and PSI (any change of the distribution's shape, over the training deciles)."""
    served, trained = np.asarray(serving, dtype=np.float64), np.asarray(training, dtype=np.float64)
    pooled = math.sqrt((served.var(ddof=1) + trained.var(ddof=1)) / 2) if min(len(served), len(trained)) > 1 else 0.0
    smd = (served.mean() - trained.mean()) / max(pooled, _SD_FLOOR)
    return FeatureDrift(
        feature=feature,
        serving_mean=float(served.mean()),
        training_mean=float(trained.mean()),
        smd=float(smd),
        psi=population_stability_index(served, trained),
    )


def population_stability_index(serving: np.ndarray, training: np.ndarray, *, bins: int = PSI_BINS) -> float:
    """PSI = sum over bins of (s - t) * ln(s / t), the bins being the training set's quantiles.

    Small samples get fewer bins (one per ten photos of the smaller side, 2 to PSI_BINS) and half a photo added to
    every bin: with 10 bins, 30 served photos against 40 training ones of the SAME kind scored 0.97 (empty bins
    dominate), above the 0.25 that reads as a significant shift; with 3 smoothed bins, 0.1 or so.
    """
    bins = max(2, min(bins, min(len(serving), len(training)) // 10))
    edges = np.unique(np.quantile(training, np.linspace(0, 1, bins + 1)[1:-1]))

    def shares(values: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1) + 0.5
        return counts / counts.sum()

    served, trained = shares(serving), shares(training)
    return float(np.sum((served - trained) * np.log(served / trained)))


def photo_drift(serving: Sequence[CoinPhotoStats], training: Sequence[CoinPhotoStats]) -> tuple[FeatureDrift, ...]:
    """Every FEATURE of the served photos against the training photos (empty when either side has fewer than two)."""
    if len(serving) < 2 or len(training) < 2:
        return ()
    return tuple(
        feature_drift(name, [getattr(row, name) for row in serving], [getattr(row, name) for row in training])
        for name in FEATURES
    )
