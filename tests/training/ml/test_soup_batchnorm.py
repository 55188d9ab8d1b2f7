"""The averaged reader's batch-norm statistics are measured on the run's coins, never averaged from the folds.

Averaging the weights of K fold models gives a model that none of them was; the running means and variances the
folds kept belong to their own weights, and their average belongs to nothing (soup.py). make_soup therefore
recomputes them on the run's un-augmented coins. Here the folds carry statistics that no real activation has (a
mean of 1000, a variance of 10^6): the soup must not keep them, and two runs that differ only in those statistics
must give the same soup.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.ml import soup
from training.ml.config import load_config
from training.ml.data import CoinPairDataset, CoinSample
from training.ml.folds import FoldContext, FoldOutput, fold_plan
from training.ml.model import build_model
from training.ml.synthetic import iter_coins
from training.ml.train import select_device

# 44 coins, 45 % held out: 20 holdout coins (a soup is judged only with at least 20), 24 for 2 folds; 48 px keeps the
# forward passes over them and the non-coin photos near a second
OVERRIDES = ["image_size=48", "batch_size=8", "serve_int8=false", "folds=2", "calibration_share=0.45"]
SENTINEL_MEAN, SENTINEL_VAR = 1000.0, 1e6


@pytest.fixture(scope="module")
def context() -> FoldContext:
    config = load_config(overrides=OVERRIDES)
    coins = [
        CoinSample(front=front, back=back, year=year, key=str(i))
        for i, (front, back, year) in enumerate(iter_coins(44, seed=31, size=48))
    ]
    dataset = CoinPairDataset(coins, config, train=True).preload()
    built = FoldContext.build(config, dataset, fold_plan(config, len(coins)))
    assert soup.soup_wanted(config, built.plan), "the plan must hold coins out, or no soup is made"
    return built


def fold_outputs(config, *, mean: float, var: float) -> list[FoldOutput]:
    """Two fold models: the base reader with its weights nudged apart, their batch-norm statistics set to mean/var."""
    base = build_model(config).state_dict()
    outputs = []
    for fold in range(2):
        generator = torch.Generator().manual_seed(fold)
        state = {}
        for key, tensor in base.items():
            if key.endswith("running_mean"):
                state[key] = torch.full_like(tensor, mean)
            elif key.endswith("running_var"):
                state[key] = torch.full_like(tensor, var)
            elif tensor.is_floating_point():
                state[key] = tensor + 1e-3 * torch.randn(tensor.shape, generator=generator)
            else:
                state[key] = tensor.clone()
        outputs.append(
            FoldOutput(
                fold=fold,
                state=state,
                val_pos=np.zeros(0, dtype=np.int64),
                predicted_years=np.zeros(0),
                metrics={},
                baseline_metrics={},
                fresh_years=np.zeros(0),
            )
        )
    return outputs


def batchnorm_statistics(state) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var"))}


def test_the_soups_batchnorm_statistics_are_the_coins_not_the_folds_average(context):
    # given the same fold weights twice, once with absurd batch-norm statistics and once with the identity's
    device = select_device("cpu")
    absurd = soup.make_soup(context, fold_outputs(context.config, mean=SENTINEL_MEAN, var=SENTINEL_VAR), device=device)
    plain = soup.make_soup(context, fold_outputs(context.config, mean=0.0, var=1.0), device=device)
    assert absurd is not None and plain is not None

    # then the soup kept none of the folds' statistics: they were measured again on the run's coins
    statistics = batchnorm_statistics(absurd.state)
    assert statistics, "the reader has batch-norm layers"
    for key, value in statistics.items():
        folds = SENTINEL_MEAN if key.endswith("mean") else SENTINEL_VAR
        assert not torch.allclose(value, torch.full_like(value, folds)), f"{key}: the folds' average was kept"
    # and the same coins gave the same statistics, whatever the folds carried
    for key, value in batchnorm_statistics(plain.state).items():
        assert torch.allclose(statistics[key], value, rtol=1e-4, atol=1e-5), key
    # so the soup reads the holdout as one model with those statistics does
    assert np.allclose(absurd.fresh_log_p, plain.fresh_log_p, atol=1e-4)
