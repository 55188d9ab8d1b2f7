"""The int8 serving graph: written only when it answers as the float32 graph does on photos it was not fitted on."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest

from training.ml import images, synthetic
from training.ml.config import seed_regression
from training.ml.ensemble import CoinYearEnsemble, export_onnx
from training.ml.interval import IntervalCalibration
from training.ml.model import build_model
from training.ml.quantize import quantize_onnx
from training.ml.tracking.loading import predictor_from_files
from training.ml.tracking.packaging import write_model_artifacts

CONFIG = seed_regression(head="reader", image_size=192, reader_width=64, init_from="base")


@pytest.fixture(scope="module")
def reader_onnx(tmp_path_factory):
    """The base reader as a one-fold ensemble (it reads generated coins), exported to float32 ONNX."""
    model = build_model(CONFIG)  # init_from: base
    ensemble = CoinYearEnsemble([model], CONFIG, 0.0, calibration={"temperature": 1.0})
    path = tmp_path_factory.mktemp("quantize") / "model.onnx"
    export_onnx(ensemble, path, CONFIG)
    coins = list(synthetic.iter_coins(24, seed=606_060, size=192))
    front, back = images.preprocess_batch([(f, b) for f, b, _ in coins], CONFIG)
    return path, front.numpy(), back.numpy(), np.array([y for _f, _b, y in coins])


def test_int8_graph_reads_the_same_years_as_float32_and_is_kept(reader_onnx, tmp_path):
    path, front, back, truth = reader_onnx
    out = tmp_path / "model_int8.onnx"

    check = quantize_onnx(
        path, out, fit_front=front[:12], fit_back=back[:12], check_front=front[12:], check_back=back[12:]
    )

    assert check.accepted and out.is_file()
    assert check.pairs == 12 and check.year_agreement >= 0.97 and check.verdict_agreement >= 0.97
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    years = session.run(None, {"front": front[12:], "back": back[12:]})[0][:, 0]
    assert np.mean(np.abs(years - truth[12:]) <= 1) >= 0.75  # it still reads the dates, not just agrees
    assert out.stat().st_size < path.stat().st_size / 2  # int8 weights


def test_int8_graph_that_disagrees_is_removed_and_serving_stays_float32(reader_onnx, tmp_path):
    path, front, back, _truth = reader_onnx
    out = tmp_path / "model_int8.onnx"

    check = quantize_onnx(
        path,
        out,
        fit_front=front[:12],
        fit_back=back[:12],
        check_front=front[12:],
        check_back=back[12:],
        min_agreement=1.01,  # no graph can agree on more than every photo
    )

    assert not check.accepted
    assert not out.exists()


def test_registered_files_carry_the_int8_graph_and_serving_picks_it(reader_onnx, tmp_path):
    # given a run whose kept photos let the int8 graph agree with float32
    _path, front, back, truth = reader_onnx
    state = build_model(CONFIG).state_dict()
    calibration = IntervalCalibration(
        level=0.95,
        base=0.0,
        spread_coef=0.0,
        shape=1.0,
        oof_rms=1.0,
        mean_spread_var=0.0,
        spread_source="holdout",
        coin_threshold=0.5,
        read_threshold=0.15,
    )
    run = SimpleNamespace(
        config=CONFIG,
        fold_states=[state],
        calibration=calibration,
        quantization_photos=(front.astype(np.float16), back.astype(np.float16)),
        ensemble=lambda: CoinYearEnsemble.from_states([state], CONFIG, calibration),
    )

    # when its artifacts are written and loaded the way serving loads them
    paths = write_model_artifacts(run, tmp_path / "artifacts")
    files = {key: str(path) for key, path in paths.items()}
    served, _config, backend, stored = predictor_from_files(files)
    float32, _config, float_backend, _ = predictor_from_files(files, backend="onnx")

    # then the int8 graph is registered with its check, served by default, and answers as float32 does
    assert "onnx_int8" in paths and stored["int8"]["accepted"] and stored["int8"]["pairs"] == 12
    assert (backend, float_backend) == ("onnx-int8", "onnx")
    int8_years = served.predict(front, back)[:, 0]
    float_years = float32.predict(front, back)[:, 0]
    assert np.mean(np.abs(int8_years - float_years) <= 1) >= 0.9
    assert np.mean(np.abs(int8_years - truth) <= 1) >= 0.75


def test_a_config_without_int8_registers_only_float32(reader_onnx, tmp_path):
    _path, front, back, _truth = reader_onnx
    config = dataclasses.replace(CONFIG, serve_int8=False)
    state = build_model(CONFIG).state_dict()
    run = SimpleNamespace(
        config=config,
        fold_states=[state],
        calibration={"temperature": 1.0},
        quantization_photos=(front, back),
        ensemble=lambda: CoinYearEnsemble.from_states([state], config, {"temperature": 1.0}),
    )

    paths = write_model_artifacts(run, tmp_path / "artifacts")
    _predictor, _config, backend, stored = predictor_from_files({k: str(p) for k, p in paths.items()})

    assert "onnx_int8" not in paths and "int8" not in stored and backend == "onnx"
