"""Calibrating the date reader on coins no fold model trained on: the temperature of its year distribution, the
coin threshold (against generated non-coin photos and the photos curators marked not a coin), and the interval's
coverage and sharpness.

Kept apart from train.py (the K-fold loop, which calls it once per fit) because it is specific to the reader head.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from training.ml import negatives
from training.ml.config import TrainConfig
from training.ml.images import build_transforms, load_uint8
from training.ml.model import CoinDateModel

NEGATIVE_CALIBRATION_PHOTOS = 120
NEGATIVE_CALIBRATION_SEED = 424242
UNREADABLE_BELOW = 0.15


PhotoSource = Path | bytes
NegativePair = tuple[PhotoSource, PhotoSource]  # a non-coin's (front, back) photos: file paths or bytes


def _photo_bytes(photo: PhotoSource) -> bytes:
    return photo.read_bytes() if isinstance(photo, Path) else photo


def negative_loader(config: TrainConfig, extra: Sequence[NegativePair] = ()) -> DataLoader:
    """Non-coin photo pairs for the coin threshold: generated ones (the training kinds, a seed never used in
    pretraining), then ``extra`` (front, back) pairs, the photos curators marked not a coin, as they were uploaded
    (the held-out share of them, coin_head.curator_split: the others trained the coin head).

    The extra pairs come last, so the last len(extra) scores of reader_outputs() are theirs (calibrate_reader's
    ``curator_negatives``). They never carry a year: the loader's year and weight columns are dummies."""
    transform = build_transforms(config, train=False)
    photos = torch.stack(
        [
            load_uint8(negatives.generate_negative_jpeg(NEGATIVE_CALIBRATION_SEED + i), config)
            for i in range(NEGATIVE_CALIBRATION_PHOTOS)
        ]
    )
    x = transform.batch(photos)
    front, back = x, x.roll(1, 0)
    if extra:
        pairs = [(load_uint8(_photo_bytes(f), config), load_uint8(_photo_bytes(b), config)) for f, b in extra]
        front = torch.cat([front, transform.batch(torch.stack([pair[0] for pair in pairs]))])
        back = torch.cat([back, transform.batch(torch.stack([pair[1] for pair in pairs]))])
    dummy = torch.zeros(len(front))
    return DataLoader(TensorDataset(front, back, dummy, dummy), batch_size=2 * config.batch_size)


@torch.inference_mode()
def reader_outputs(model: CoinDateModel, loader: DataLoader, *, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(log p(year) (M, Y), coin score (M,)) of a date reader over ``loader``."""
    model.eval()
    log_ps, coins = [], []
    for batch in loader:
        front, back = (t.to(device).contiguous(memory_format=torch.channels_last) for t in batch[:2])
        log_p, coin = model.year_log_probs(front, back)
        log_ps.append(log_p.float().cpu())
        coins.append(coin.amin(1).float().cpu())
    if not log_ps:
        return np.zeros((0, model.config.year_max - model.config.year_min + 1)), np.zeros(0)
    return torch.cat(log_ps).double().numpy(), torch.cat(coins).double().numpy()


def _mixture(log_ps: Sequence[np.ndarray], temperature: float) -> np.ndarray:
    scaled = np.stack(log_ps) / temperature
    scaled -= scaled.max(axis=2, keepdims=True)
    p = np.exp(scaled)
    return (p / p.sum(axis=2, keepdims=True)).mean(0)


def highest_density_interval(p: np.ndarray, level: float, year_min: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of p (N, Y): the lowest and highest year of the smallest set of most likely years holding ``level``
    of the mass (the numpy twin of CoinYearEnsemble._read)."""
    order = np.argsort(-p, axis=1, kind="stable")
    ordered = np.take_along_axis(p, order, 1)
    inside = (np.cumsum(ordered, 1) - ordered) < level
    years = order + year_min
    return np.where(inside, years, 10**6).min(1), np.where(inside, years, -(10**6)).max(1)


def calibrate_reader(
    log_ps: Sequence[np.ndarray],
    coin_scores: Sequence[np.ndarray],
    negative_scores: Sequence[np.ndarray],
    truth: np.ndarray,
    config: TrainConfig,
    *,
    curator_negatives: int = 0,
) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
    """Temperature (NLL of the fold mixture on coins no fold model trained on), coin threshold (at most 1% of those
    coins rejected, never above 0.5) and the interval's coverage and sharpness there; returns (calibration fields,
    metrics). The last ``curator_negatives`` negative scores are the curators' non-coins (negative_loader's extra):
    their rejected share is a metric of its own."""
    # a label outside the config's year range counts as its nearest edge (the model cannot answer beyond it)
    index = np.clip(np.round(truth).astype(int) - config.year_min, 0, config.year_max - config.year_min)
    grid = np.exp(np.linspace(np.log(0.3), np.log(5.0), 41))
    nll = [float(-np.mean(np.log(_mixture(log_ps, t)[np.arange(len(index)), index] + 1e-12))) for t in grid]
    temperature = float(grid[int(np.argmin(nll))])
    p = _mixture(log_ps, temperature)
    low, high = highest_density_interval(p, config.interval_level, config.year_min)
    year = p.argmax(1) + config.year_min
    coin = np.mean(np.stack(coin_scores), 0)
    negative = np.mean(np.stack(negative_scores), 0) if negative_scores else np.zeros(0)
    coin_threshold = float(min(0.5, np.quantile(coin, 0.01))) if len(coin) else 0.5
    near = np.abs(np.arange(p.shape[1])[None, :] + config.year_min - year[:, None]) <= 1
    read = (p * near).sum(1)
    metrics = {
        "calibration_temperature": temperature,
        "calibration_nll": float(min(nll)),
        "ensemble_exact": float(np.mean(np.abs(year - truth) <= 1)),
        "ensemble_mae": float(np.mean(np.abs(year - truth))),
        "interval_coverage_reader": float(np.mean((low <= truth) & (truth <= high))),
        "interval_median_width": float(np.median(high - low + 1)),
        "coin_threshold": coin_threshold,
        "coin_rejected_share": float(np.mean(coin < coin_threshold)) if len(coin) else 0.0,
        "not_coin_rejected_share": float(np.mean(negative < coin_threshold)) if len(negative) else float("nan"),
        "unreadable_share": float(np.mean(read < UNREADABLE_BELOW)),
    }
    if curator_negatives and len(negative) >= curator_negatives:
        metrics["curator_negatives"] = float(curator_negatives)
        metrics["curator_not_coin_rejected_share"] = float(np.mean(negative[-curator_negatives:] < coin_threshold))
    fields = {"temperature": temperature, "coin_threshold": coin_threshold, "read_threshold": UNREADABLE_BELOW}
    return fields, metrics, np.stack([truth, year, low, high], 1).astype(np.float64)
