"""Folds trained on their own (as separate workers do, each from scratch, in any order, passed on as bytes) combine
into the same result as fit() training them one after another."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.ml.config import TrainConfig, load_config
from training.ml.data import CoinPairDataset, CoinSample
from training.ml.folds import FoldContext, FoldOutput, fit_fold, fold_plan
from training.ml.kfold import fit, fit_combine
from training.ml.synthetic import iter_coins
from training.ml.train import select_device


def one_worker_per_fold(config: TrainConfig, samples: list[CoinSample], order: list[int]) -> list[FoldOutput]:
    """Each fold on a fresh 'worker': its own dataset, its own context, its output only as bytes."""
    outputs = []
    for fold in order:
        dataset = CoinPairDataset(samples, config, train=True).preload()
        context = FoldContext.build(config, dataset, fold_plan(config, len(samples)))
        output = fit_fold(context, fold, device=select_device("cpu"))
        outputs.append(FoldOutput.from_bytes(output.to_bytes()))
    return outputs


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(["head=regression", "init_from=null", "image_size=32", "batch_size=4"], id="regression"),
        pytest.param(["image_size=64", "batch_size=4", "serve_int8=false"], id="date-reader"),
    ],
)
def test_folds_trained_apart_combine_into_what_fit_gives(overrides):
    # given 30 generated coins, 3 folds, and a holdout of 0.0 (too few coins) or of every fold's fresh answers
    config = load_config(overrides=[*overrides, "epochs=1", "folds=3", "patience=0"])
    samples = [
        CoinSample(front=front, back=back, year=year, key=str(i))
        for i, (front, back, year) in enumerate(iter_coins(30, seed=12, size=96))
    ]
    sequential = fit(config, samples, progress=False, device="cpu")

    # when the three folds train apart, last fold first, and are combined from their bytes
    plan = fold_plan(config, len(samples))
    years = np.array([s.year for s in samples], dtype=np.float64)
    combined = fit_combine(config, plan, years, one_worker_per_fold(config, samples, order=[2, 0, 1]))

    # then the result is the same: weights, out-of-fold answers, metrics, calibration
    for mine, theirs in zip(sequential.fold_states, combined.fold_states, strict=True):
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert np.array_equal(sequential.oof_pred, combined.oof_pred)
    assert np.array_equal(sequential.oof_fold, combined.oof_fold)
    assert sequential.metrics == pytest.approx(combined.metrics)
    assert sequential.calibration == combined.calibration
    assert len(combined.history) == len(sequential.history) == 3


def test_fit_combine_refuses_a_missing_or_repeated_fold():
    config = load_config(overrides=["head=regression", "init_from=null", "image_size=32", "epochs=1", "folds=2"])
    samples = [
        CoinSample(front=front, back=back, year=year, key=str(i))
        for i, (front, back, year) in enumerate(iter_coins(8, seed=3, size=64))
    ]
    outputs = one_worker_per_fold(config, samples, order=[0])
    with pytest.raises(ValueError, match="one output per fold"):
        fit_combine(config, fold_plan(config, 8), np.zeros(8), [outputs[0], outputs[0]])
