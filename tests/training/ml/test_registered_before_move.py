"""A model version registered before the MLflow code moved to training.ml.tracking still loads and predicts.

Registered versions are models-from-code: their pyfunc.py runs ``from training.ml.registry import
predictor_from_files`` when MLflow loads them. In a process that already imported this repository's ``training``
package (Django workers, this test session) that import resolves against the repository, not against the copy of
training/ml shipped inside the model, so training/ml/registry.py must keep that name. The version under test was
registered with the code of that time (tests/data/registered_before_move/README.md says how).
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import mlflow
import numpy as np
import pytest

import training
from training.ml import images
from training.ml.tracking import loading

DATA = Path(__file__).resolve().parents[2] / "data" / "registered_before_move"
REPO_TRAINING = Path(training.__file__).resolve().parent


@pytest.fixture
def old_model_dir(tmp_path: Path) -> Path:
    """The old version's MLflow model folder, unpacked into a fresh folder."""
    with tarfile.open(DATA / "model.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    return tmp_path / "model"


@pytest.fixture
def request_inputs() -> list[dict[str, str]]:
    return json.loads((DATA / "request.json").read_text())["inputs"]


@pytest.fixture
def expected() -> dict:
    return json.loads((DATA / "expected.json").read_text())


@pytest.fixture
def restored_sys_path(monkeypatch):
    """Loading a model prepends its code/ folder to sys.path; undo that for the tests after this one."""
    monkeypatch.setattr(sys, "path", list(sys.path))


def _raw_rows(predictor, config, inputs: list[dict[str, str]]) -> np.ndarray:
    pairs = [
        (images.decode_base64(i["front_image_base64"]), images.decode_base64(i["back_image_base64"])) for i in inputs
    ]
    front, back = images.preprocess_batch(pairs, config)
    return np.asarray(predictor.predict(front, back), dtype=np.float64)[:, :5]


def test_version_registered_before_the_move_loads_and_predicts_through_the_json_contract(
    old_model_dir, request_inputs, expected, restored_sys_path
):
    # given the repository's training package imported (as in every Django process), and the old version's folder

    # when MLflow loads the old version and answers the Model-Serving inputs
    model = mlflow.pyfunc.load_model(str(old_model_dir))
    predictions = model.predict(request_inputs)

    # then its old import path was served by this repository's compatibility module
    assert Path(sys.modules["training.ml.registry"].__file__).resolve().parent == REPO_TRAINING / "ml"
    assert Path(sys.modules["training"].__file__).resolve().parent == REPO_TRAINING
    # and the answers are what the code of that time gave for the same two coins
    assert predictions == expected["predictions"]
    python_model = model.unwrap_python_model()
    details = python_model.predict(request_inputs, params={"details": True})
    assert [d.get("rejected") for d in details] == [d.get("rejected") for d in expected["details"]]
    assert [d.get("year") for d in details] == [d.get("year") for d in expected["details"]]
    for got, want in zip(details, expected["details"], strict=True):
        for key in ("coin_score", "read_score"):
            assert got.get(key) == pytest.approx(want.get(key), abs=2e-3)
    rows = _raw_rows(python_model.predictor, python_model.config, request_inputs)
    np.testing.assert_allclose(rows[:, :3], np.asarray(expected["rows"])[:, :3], atol=0.5)
    np.testing.assert_allclose(rows[:, 3:], np.asarray(expected["rows"])[:, 3:], atol=2e-3)


def test_version_registered_before_the_move_loads_through_the_serving_path(old_model_dir, request_inputs, expected):
    # given the folder a worker's load_predictor would have downloaded for the old version
    files = loading.model_files(old_model_dir)

    # when the Django side's loader builds its predictor (ONNX, and the PyTorch fallback)
    for backend in ("onnx", "torch"):
        predictor, config, used, _ = loading.predictor_from_files(files, backend=backend)

        # then it answers as the code of that time did
        assert used == backend
        rows = _raw_rows(predictor, config, request_inputs)
        np.testing.assert_allclose(rows[:, :3], np.asarray(expected["rows"])[:, :3], atol=0.5)
        np.testing.assert_allclose(rows[:, 3:], np.asarray(expected["rows"])[:, 3:], atol=2e-3)
