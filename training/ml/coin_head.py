"""Teaching the date reader's coin head the photos curators marked not a coin.

Why: the coin head (``DateReaderNet.coin``, a 2 x width -> 64 -> 1 MLP on the pooled trunk features of one photo)
learned "coin or not" in pretraining against generated non-coin photos, and fine-tuning on year labels keeps it
frozen (labelled batches hold only coins, so training it there would teach it that everything is a coin). A curator's
"not a coin" is the one signal from real uploads of what the model wrongly accepts; reading it only in the threshold's
calibration changed nothing the model rejects. Measured on generated medals (a gold disc with a year on a ribbon, a
kind pretraining never drew): the base reader scores 35 % of them above 0.5, i.e. accepts them as coins.

How: after a fold's year training (trunk and date heads exactly as before, batch-norm statistics recalibrated), the
coin head alone is refitted on the fold model's final, eval-mode features, detached from the trunk (no gradient
reaches the trunk, so year reading cannot regress): positives are the photos of the fold's training coins, negatives
the curators' non-coins of the run's training part (a seeded share is held out for the calibration, see
``curator_split``) and generated non-coin photos of the pretraining kinds (so that the head does not forget them),
each class weighted to half of the loss, the curators' photos to half of the negatives'. GENERATED_COINS generated
coins join the positives: with the fold's 20 coins alone (40 coins, 2 folds) the refitted head rejected 17 % of fresh
coins; with them none, lowest fresh coin score 0.59. Each photo is seen plain and augmented (the same augmentation on
both classes, so augmentation itself carries no label). Starting from the current head, COIN_HEAD_STEPS full-batch
Adam steps on cached features take well under a second; drawing the generated photos takes about 16 s at 192 px,
once per worker, and only in runs given curators' non-coins.

The threshold stays honest: it is calibrated on coins the head never took as positives (the run's holdout, else each
coin's out-of-fold score: kfold._threshold_coin_scores). Measured through a retrain (40 coins at 128 px, one
epoch, 2 folds, 12 curator-marked tokens; tests/training/test_coin_head_learning.py) on 40 fresh tokens: accepted
77.5 % -> 35 %, median coin score 0.90 -> 0.22 (thresholds 0.50 -> 0.38); fresh coins accepted 96.7 % -> 100 %.
With so few coins the honest threshold is low, so not every token is rejected yet; more labelled coins raise it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.ml import negatives, synthetic
from training.ml.config import TrainConfig
from training.ml.images import build_transforms, load_uint8

COIN_HEAD_STEPS = 300
COIN_HEAD_LR = 2e-3
COIN_HEAD_POSITIVES = 512  # at most this many training coins (both photos) per fold are the positives
TRAIN_NEGATIVE_PHOTOS = 240  # generated non-coin photos, seeds apart from the calibration's (negative_loader)
TRAIN_NEGATIVE_SEED = 737_373
GENERATED_COINS = 150  # generated coins (both photos) beside the fold's own: a few dozen real coins overfit the head
CURATOR_VIEWS = 4  # augmented views of each curator photo besides the plain one
MIN_CURATOR_HOLDOUT = 1  # with 2 or more curator non-coins, at least one is kept for the calibration

PhotoSource = Path | bytes


def curator_split(config: TrainConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(held out, trained) positions among ``n`` curator non-coins, seeded like the coins' calibration holdout.

    The held-out ones are what ``curator_not_coin_rejected_share`` measures: no fold model trained on them, so that
    figure says how the version treats the next such upload, not how well it remembers these. The trained ones are
    shared by every fold (they take no part in a fold's validation, which scores years only)."""
    if n < 2:
        return np.zeros(0, dtype=np.int64), np.arange(n, dtype=np.int64)
    holdout = max(MIN_CURATOR_HOLDOUT, int(round(n * config.calibration_share)))
    order = np.random.default_rng(config.seed + 3).permutation(n)
    return np.sort(order[:holdout]), np.sort(order[holdout:])


@dataclass(frozen=True)
class CoinNegatives:
    """Photos (uint8, N x C x S x S) a fold's coin head trains on besides the fold's coins: non-coins, generated
    and curators', and generated coins."""

    generated: torch.Tensor
    curator: torch.Tensor  # both photos of every trained curator pair
    generated_coins: torch.Tensor | None = None  # positives the pretraining also saw, beside the fold's coins

    @property
    def curator_pairs(self) -> int:
        return len(self.curator) // 2

    @classmethod
    def build(cls, config: TrainConfig, pairs: Sequence[tuple[PhotoSource, PhotoSource]]) -> CoinNegatives:
        def photo(source: PhotoSource) -> torch.Tensor:
            return load_uint8(source.read_bytes() if isinstance(source, Path) else source, config)

        generated = torch.stack(
            [
                load_uint8(negatives.generate_negative_jpeg(TRAIN_NEGATIVE_SEED + i), config)
                for i in range(TRAIN_NEGATIVE_PHOTOS)
            ]
        )
        shape = (0, config.in_channels, config.image_size, config.image_size)
        curator = torch.stack([photo(p) for pair in pairs for p in pair]) if pairs else torch.zeros(shape).byte()
        coins = synthetic.iter_coins(GENERATED_COINS, seed=TRAIN_NEGATIVE_SEED, size=config.image_size)
        generated_coins = torch.stack(
            [load_uint8(photo, config) for front, back, _ in coins for photo in (front, back)]
        )
        return cls(generated, curator, generated_coins)


def _views(photos: torch.Tensor, config: TrainConfig, views: int, generator: torch.Generator) -> torch.Tensor:
    """The plain photos (as served) and ``views`` augmented copies, normalised."""
    plain = build_transforms(config, train=False).batch(photos)
    augment = build_transforms(config, train=True)
    return torch.cat([plain, *(augment.batch(photos, generator) for _ in range(views))])


@torch.no_grad()
def _features(model: torch.nn.Module, photos: torch.Tensor, device: torch.device, batch: int) -> torch.Tensor:
    return torch.cat([model.photo_features(photos[i : i + batch].to(device)) for i in range(0, len(photos), batch)])


def fit_coin_head(
    model: torch.nn.Module,
    positives: torch.Tensor,
    negatives_: CoinNegatives,
    config: TrainConfig,
    *,
    device: torch.device,
    seed: int,
) -> dict[str, float]:
    """Refit ``model.reader.coin`` (a CoinDateModel) in place on the photos of coins ``positives`` (uint8) against
    ``negatives_``; returns the weighted coin loss before and after and the photo counts (fold metrics)."""
    generator = torch.Generator().manual_seed(seed)
    if len(positives) > 2 * COIN_HEAD_POSITIVES:
        positives = positives[torch.randperm(len(positives), generator=generator)[: 2 * COIN_HEAD_POSITIVES]]
    batch = 2 * config.batch_size
    if negatives_.generated_coins is not None:
        positives = torch.cat([positives, negatives_.generated_coins])
    groups = [
        _views(positives, config, 1, generator),
        _views(negatives_.generated, config, 1, generator),
        _views(negatives_.curator, config, CURATOR_VIEWS, generator),
    ]
    model.eval()
    features = [_features(model, g, device, batch) for g in groups]
    # class balance: coins 1/2, non-coins 1/2 (the curators' half of that when there are any)
    shares = (0.5, 0.25, 0.25) if len(groups[2]) else (0.5, 0.5, 0.0)
    weights = torch.cat([torch.full((len(f),), s / max(1, len(f))) for f, s in zip(features, shares, strict=True)])
    target = torch.cat([torch.ones(len(features[0])), torch.zeros(len(features[1]) + len(features[2]))])
    x, weights, target = torch.cat(features).float(), weights.to(device), target.to(device)
    head = model.reader.coin
    head.requires_grad_(True)
    optimizer = torch.optim.Adam(head.parameters(), lr=COIN_HEAD_LR)

    def loss() -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(head(x).squeeze(1), target, reduction="none")
        return (bce * weights).sum()

    with torch.no_grad():
        before = float(loss())
    for _ in range(COIN_HEAD_STEPS):
        optimizer.zero_grad(set_to_none=True)
        value = loss()
        value.backward()
        optimizer.step()
    head.requires_grad_(False)
    with torch.no_grad():
        after = float(loss())
    return {
        "coin_head_loss_before": before,
        "coin_head_loss": after,
        "coin_head_positives": float(len(positives)),
        "coin_head_negatives": float(len(negatives_.generated) + len(negatives_.curator)),
        "curator_negatives_trained": float(negatives_.curator_pairs),
    }
