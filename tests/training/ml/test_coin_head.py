"""The coin head learns from curators' non-coins (training.ml.coin_head): refitted after a fold's year training on
detached features, so it rejects what curators rejected while the trunk and the year heads stay as trained; without
curator non-coins it stays frozen, as the base trained it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.ml import negatives
from training.ml.coin_head import CoinNegatives, curator_split, fit_coin_head
from training.ml.config import load_config
from training.ml.data import CoinPairDataset, CoinSample
from training.ml.folds import FoldContext, fit_fold, fold_plan
from training.ml.images import build_transforms, load_uint8
from training.ml.model import build_model
from training.ml.synthetic import iter_coins

OVERRIDES = ["image_size=128", "batch_size=4", "serve_int8=false", "epochs=1", "folds=2", "patience=0"]


@pytest.fixture(scope="module")
def config():
    return load_config(overrides=OVERRIDES)


@pytest.fixture(scope="module")
def coins() -> list[CoinSample]:
    return [
        CoinSample(front=front, back=back, year=year, key=str(i))
        for i, (front, back, year) in enumerate(iter_coins(12, seed=3, size=96))
    ]


def token_pairs(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """Struck metal tokens (a star and TOKEN, no date), a kind pretraining never drew and readers take for coins:
    what a curator would mark not a coin."""
    return [
        tuple(negatives.generate_negative_jpeg(seed + 2 * i + side, size=128, kinds=("token",)) for side in (0, 1))
        for i in range(count)
    ]


def coin_loss(model, photos: torch.Tensor, is_coin: float, config) -> float:
    x = build_transforms(config, train=False).batch(photos)
    model.eval()
    with torch.no_grad():
        logits = model.reader.coin(model.photo_features(x)).squeeze(1)
    return float(F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, is_coin)))


def test_a_coin_head_refit_with_curator_negatives_lowers_their_coin_loss_and_leaves_the_rest_alone(config, coins):
    # given the base reader and photos curators marked not a coin
    model = build_model(config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pairs = token_pairs(6, seed=50)
    negative_set = CoinNegatives.build(config, pairs)
    curator_photos = negative_set.curator
    positives = torch.stack([load_uint8(sample.front, config) for sample in coins])
    loss_before = coin_loss(model, curator_photos, 0.0, config)

    # when the coin head is refitted
    report = fit_coin_head(model, positives, negative_set, config, device=torch.device("cpu"), seed=1)

    # then its loss on those non-coins fell, its reported weighted loss too, and only the coin head changed
    assert coin_loss(model, curator_photos, 0.0, config) < 0.5 * loss_before
    assert report["coin_head_loss"] < report["coin_head_loss_before"]
    assert report["curator_negatives_trained"] == 6
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("reader.coin.") for k in changed)
    assert all(not p.requires_grad for p in model.reader.coin.parameters())  # frozen again for what follows


def test_curator_split_keeps_a_seeded_share_for_the_calibration(config):
    held_out, trained = curator_split(config, 10)
    assert len(held_out) == 1 and len(trained) == 9
    assert set(held_out).isdisjoint(trained)
    assert np.array_equal(curator_split(config, 10)[0], held_out)  # the same on every worker
    assert [len(part) for part in curator_split(config, 1)] == [0, 1]  # one alone trains, nothing to measure it on


@pytest.mark.parametrize("with_negatives", [False, True])
def test_a_fold_trains_the_coin_head_only_when_curators_marked_non_coins(config, coins, with_negatives):
    # given a fold of a run, with or without curators' non-coins
    dataset = CoinPairDataset(coins, config, train=True)
    pairs = token_pairs(3, seed=70) if with_negatives else []
    context = FoldContext.build(config, dataset, fold_plan(config, len(coins)), pairs)
    base = build_model(config).state_dict()

    # when the fold trains
    output = fit_fold(context, 0, device=torch.device("cpu"))

    # then the coin head moved only with negatives, and the year heads trained either way
    coin_keys = [k for k in base if k.startswith("reader.coin.")]
    moved = any(not torch.equal(output.state[k], base[k]) for k in coin_keys)
    assert moved is with_negatives
    assert any(not torch.equal(output.state[k], base[k]) for k in base if k.startswith("reader.read."))
    if with_negatives:
        assert output.metrics["curator_negatives_trained"] == 2  # one of three held out for the calibration
        assert output.metrics["coin_head_loss"] < output.metrics["coin_head_loss_before"]
    else:
        assert "coin_head_loss" not in output.metrics
