"""The fold ensemble: [year, low, high], save/load, ONNX export checked against PyTorch, same years either way."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from training.ml.config import TrainConfig, seed_regression
from training.ml.ensemble import (
    CoinYearEnsemble,
    EnsemblePredictor,
    check_onnx,
    export_onnx,
    load_ensemble,
    save_ensemble,
)
from training.ml.interval import IntervalCalibration, interval_halfwidth
from training.ml.model import build_model

CONFIG = seed_regression(image_size=32, head_hidden=16)


def settled_model(seed: int, config: TrainConfig = CONFIG):
    """A random model whose BatchNorm statistics have seen data (else eval mode answers a constant)."""
    torch.manual_seed(seed)
    model = build_model(config)
    model.train()
    for norm in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        norm.momentum = None
    with torch.no_grad():
        for _ in range(3):
            x = torch.randn(16, config.in_channels, config.image_size, config.image_size)
            model(x, x.flip(0))
    return model.eval()


def make_ensemble(config: TrainConfig = CONFIG, k: int = 3) -> CoinYearEnsemble:
    calibration = IntervalCalibration(
        level=0.8, base=6.0, spread_coef=0.5, shape=1.3, oof_rms=10.0, mean_spread_var=4.0, spread_source="holdout"
    )
    models = [settled_model(seed, config) for seed in range(k)]
    return CoinYearEnsemble.from_states([m.state_dict() for m in models], config, calibration)


def photo_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_ensemble_returns_year_low_high_within_the_year_range():
    ensemble = make_ensemble()
    front, back = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        out = ensemble(front, back)
        folds = ensemble.fold_years(front, back)
    assert out.shape == (4, 3) and out.dtype == torch.float32
    year, low, high = out.unbind(1)
    assert bool(((low <= year) & (year <= high)).all())
    assert bool(((out >= 1700) & (out <= 2025)).all())
    # the year is the mean of the fold models; the halfwidth follows the calibrated spread rule
    expected = folds.mean(0).clamp(1700, 2025)
    assert torch.allclose(year, expected, atol=1e-3)
    unclipped = (low > 1700) & (high < 2025)
    halfwidth = torch.as_tensor(interval_halfwidth(folds.numpy(), IntervalCalibration(**ensemble.calibration)))
    assert torch.allclose(((high - low) / 2)[unclipped], halfwidth.float()[unclipped], atol=1e-2)


def test_ensemble_save_and_load_round_trip(tmp_path):
    ensemble = make_ensemble()
    path = save_ensemble(ensemble, tmp_path / "ensemble.pt")
    loaded = load_ensemble(path)
    front, back = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(ensemble(front, back), loaded(front, back))
    assert loaded.config == ensemble.config and loaded.interval_halfwidth == pytest.approx(6.0)


@pytest.mark.parametrize("mode", ["shared", "dual"])
def test_onnx_export_gives_the_same_years_as_pytorch(tmp_path, mode):
    # given an ensemble and its ONNX export (export_onnx itself checks random inputs to 1e-4 of the year range)
    config = seed_regression(image_size=32, head_hidden=16, mode=mode)
    ensemble = make_ensemble(config, k=2)
    path = export_onnx(ensemble, tmp_path / "ensemble.onnx", config)
    # when real photo bytes go through both predictors, with a batch size the export never saw
    pairs = [(photo_bytes(i), photo_bytes(100 + i)) for i in range(5)]
    on_onnx = EnsemblePredictor.from_onnx(path, config, threads=1)
    on_torch = EnsemblePredictor.from_torch(ensemble)
    # then they agree to hundredths of a year, and on the integer years served
    assert on_onnx.backend == "onnxruntime" and on_torch.backend == "torch"
    a, b = on_onnx.predict_bytes(pairs), on_torch.predict_bytes(pairs)
    assert a.shape == b.shape == (5, 3)
    np.testing.assert_allclose(a, b, atol=1e-2)
    assert np.array_equal(np.rint(a[:, 0]), np.rint(b[:, 0]))
    assert on_onnx.predict(torch.zeros(0, 3, 32, 32), torch.zeros(0, 3, 32, 32)).shape == (0, 3)


def test_onnx_check_fails_for_a_different_model(tmp_path):
    ensemble = make_ensemble(k=2)
    path = export_onnx(ensemble, tmp_path / "ensemble.onnx", CONFIG)
    other = make_ensemble(k=3)
    with pytest.raises(RuntimeError, match="differs from PyTorch"):
        check_onnx(other, path, CONFIG)


def test_predictor_falls_back_to_pytorch_without_an_onnx_file():
    ensemble = make_ensemble(k=2)
    predictor = EnsemblePredictor(CONFIG, onnx_path=None, ensemble=ensemble)
    assert predictor.backend == "torch"
    assert predictor.predict(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(RuntimeError):
        EnsemblePredictor(CONFIG)
