"""Training: the loss goes down, fit() reports the baseline beside the model, runs are reproducible and cancellable,
and the ensemble interval calibration covers what it states."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

from training.ml.config import seed_regression
from training.ml.data import CoinSample
from training.ml.interval import calibrate_interval, interval_halfwidth
from training.ml.kfold import FitResult, fit
from training.ml.metrics import regression_metrics
from training.ml.model import build_model
from training.ml.train import TrainingCancelled, train_one_epoch, weighted_l1

TINY = dict(image_size=32, epochs=2, folds=2, batch_size=8, head_hidden=32, patience=0)


def coin_photo(year: int, side: int, seed: int) -> bytes:
    """A 'coin' whose brightness follows the year (learnable), with a little noise."""
    rng = np.random.default_rng(seed)
    level = 30 + 190 * (year - 1700) / 325
    pixels = np.full((40, 40, 3), level) + rng.normal(0, 8, (40, 40, 3))
    pixels[..., side] *= 0.6
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def tiny_samples(n: int, seed: int = 0) -> list[CoinSample]:
    years = np.random.default_rng(seed).integers(1700, 2026, n)
    return [
        CoinSample(front=coin_photo(int(y), 0, 2 * i), back=coin_photo(int(y), 2, 2 * i + 1), year=int(y), key=f"c{i}")
        for i, y in enumerate(years)
    ]


def test_a_few_training_steps_lower_the_loss():
    # given a model and one fixed batch
    config = seed_regression(image_size=32, dropout=0.0, head_hidden=32)
    torch.manual_seed(0)
    model = build_model(config)
    front, back = torch.randn(16, 3, 32, 32), torch.randn(16, 3, 32, 32)
    target, weight = torch.rand(16) * 2 - 1, torch.ones(16)
    with torch.no_grad():
        before = float(weighted_l1(model(front, back), target, weight))
    # when it trains a few steps on it
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    stats = train_one_epoch(model, [(front, back, target, weight)] * 25, optimizer, device=torch.device("cpu"))
    with torch.no_grad():
        after = float(weighted_l1(model(front, back), target, weight))
    # then the loss went down clearly (the optimizer really steps)
    assert after < 0.6 * before, (before, after)
    assert stats["pairs"] == 16 * 25


def test_weighted_l1_counts_heavier_samples_more():
    prediction, target = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 3.0])
    assert float(weighted_l1(prediction, target, torch.ones(2))) == pytest.approx(2.0)
    assert float(weighted_l1(prediction, target, torch.tensor([1.0, 3.0]))) == pytest.approx(2.5)


def test_regression_metrics_on_a_known_example():
    metrics = regression_metrics([1800, 1850, 1900, 1950], [1804, 1862, 1900, 1930])
    assert metrics["mae"] == pytest.approx(9.0)
    assert metrics["mse"] == pytest.approx((16 + 144 + 0 + 400) / 4)
    assert metrics["within_5"] == pytest.approx(0.5) and metrics["within_10"] == pytest.approx(0.5)
    assert metrics["r2"] == pytest.approx(1 - 140 / 3125)
    assert metrics["true_std"] == pytest.approx(np.std([1800, 1850, 1900, 1950]))


def test_fit_returns_fold_metrics_with_the_constant_baseline_and_the_interval():
    # given 48 tiny coins, of which 22 are held out for the interval calibration
    config = seed_regression(**TINY, calibration_share=0.45)
    calls = []
    # when the K-fold training runs
    result = fit(config, tiny_samples(48), progress=False, on_epoch=lambda f, e, m: calls.append((f, e, m)))
    # then every fold has its model, its metrics and the baseline's on the same coins
    assert len(result.fold_states) == len(result.fold_metrics) == len(result.fold_baseline_metrics) == 2
    for key in ("mae", "mse", "r2", "within_5", "within_10", "pred_std", "true_std"):
        assert key in result.fold_metrics[0] and f"{key}_std" in result.metrics
        assert key in result.baseline_metrics
    assert len(result.oof_pred) == len(result.oof_true) == 26 and len(result.calibration_index) == 22
    assert [(f, e) for f, e, _ in calls] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert {"train_loss", "val_mae", "lr"} <= set(calls[0][2])
    assert len(result.history) == 4
    assert result.interval_coverage_source == "holdout" and 0 <= result.interval_coverage <= 1
    assert result.interval_halfwidth > 0 and "holdout_mae" in result.metrics
    assert isinstance(result.beats_baseline, bool)
    summary = result.summary()
    assert "baseline" in summary and "std of predictions" in summary
    assert result.to_dict()["metrics"]["mae"] == result.metrics["mae"]
    # and every coin has a held-out answer: its fold's for the 26, the fold ensemble's for the 22 held out from all
    assert len(result.holdout_pred) == 22 and np.allclose(result.holdout_pred, result.calibration_fold_pred.mean(0))
    assert len(result.oof_p_label) == 0  # the regression head has no distribution


def test_date_reader_fit_keeps_the_held_out_probability_of_every_label():
    # given 44 generated coins read by the date reader, 20 of them held out from every fold
    from tests.conftest import TINY_READER_OVERRIDES, _fit_generated

    result = _fit_generated([*TINY_READER_OVERRIDES, "calibration_share=0.45"], count=44, seed=5)
    cv, held = len(result.oof_index), len(result.calibration_index)
    assert (cv, held) == (24, 20)
    # then the out-of-fold answer is the most likely year, and both probabilities are probabilities
    for p_label, p_top, answers in (
        (result.oof_p_label, result.oof_p_top, result.oof_pred),
        (result.holdout_p_label, result.holdout_p_top, result.holdout_pred),
    ):
        assert len(p_label) == len(p_top) == len(answers)
        assert np.all((0 <= p_label) & (p_label <= p_top + 1e-12) & (p_top <= 1))
        assert np.all(answers == np.round(answers))
    right = result.oof_pred == result.oof_true
    assert np.allclose(result.oof_p_label[right], result.oof_p_top[right])  # where the answer is the label


def test_fit_is_reproducible_with_the_same_seed():
    config = seed_regression(**TINY)
    samples = tiny_samples(20)
    first = fit(config, samples, progress=False)
    second = fit(config, samples, progress=False)
    assert np.array_equal(first.oof_pred, second.oof_pred)
    assert all(torch.equal(first.fold_states[0][k], second.fold_states[0][k]) for k in first.fold_states[0])
    assert first.interval_coverage_source == "oof"  # too few coins for a calibration holdout


def test_should_stop_cancels_the_run():
    with pytest.raises(TrainingCancelled):
        fit(seed_regression(**TINY), tiny_samples(16), progress=False, should_stop=lambda: True)


def test_fine_tune_starts_from_the_given_weights():
    config = seed_regression(**{**TINY, "epochs": 1})
    torch.manual_seed(3)
    start = build_model(config).state_dict()
    tuned = fit(dataclasses.replace(config, lr=1e-12), tiny_samples(16), progress=False, init_state_dict=start)
    key = "front_backbone.body.0.0.weight"
    assert torch.allclose(tuned.fold_states[0][key], start[key], atol=1e-6)


def test_summary_says_loudly_when_the_model_does_not_beat_the_baseline():
    result = fit(seed_regression(**TINY), tiny_samples(16), progress=False)
    worse = dataclasses.replace(result, metrics={**result.metrics, "mae": result.baseline_metrics["mae"] + 1})
    assert not worse.beats_baseline
    assert "WARNING: model does NOT beat the constant baseline" in worse.summary()
    collapsed = dataclasses.replace(result, metrics={**result.metrics, "pred_std": 0.0})
    assert "collapse" in collapsed.summary()
    assert isinstance(result, FitResult)


@pytest.mark.parametrize(("labelled_holdout", "spread_weight"), [(False, 0.0), (True, 0.0), (True, 1.0)])
def test_interval_calibration_covers_the_stated_share_of_fresh_coins_for_the_ensemble(labelled_holdout, spread_weight):
    # given K=5 fold models whose errors share a part b and differ by v_k (as K-fold models do)
    rng = np.random.default_rng(0)
    k, bias_sd, var_sd = 5, 5.0, 8.0
    oof_residuals = rng.normal(0, bias_sd, 5000) + rng.normal(0, var_sd, 5000)  # one fold model per coin
    truth = rng.normal(1850, 50, 300)
    holdout = truth[None, :] + rng.normal(0, bias_sd, 300)[None, :] + rng.normal(0, var_sd, (k, 300))
    # when the interval is calibrated at 80% (with or without the holdout's true years)
    calibration = calibrate_interval(
        oof_residuals,
        holdout,
        level=0.8,
        fresh_truth=truth if labelled_holdout else None,
        spread_weight=spread_weight,
    )
    # then on fresh coins the ENSEMBLE's interval covers about 80% ...
    b = rng.normal(0, bias_sd, 20000)
    fold_predictions = b[None, :] + rng.normal(0, var_sd, (k, 20000))  # truth = 0
    ensemble = fold_predictions.mean(0)
    coverage = np.mean(np.abs(ensemble) <= interval_halfwidth(fold_predictions, calibration))
    assert abs(coverage - 0.8) < 0.03, coverage
    assert calibration.ensemble_var == pytest.approx(bias_sd**2 + var_sd**2 / k, rel=0.15)
    # ... whereas the single-model out-of-fold quantile would over-cover the more accurate ensemble
    naive = np.quantile(np.abs(oof_residuals), 0.8)
    assert np.mean(np.abs(ensemble) <= naive) > 0.9
