"""The registered coin-year model as MLflow sees it (models-from-code).

`mlflow models serve -m models:/coin-year@production --env-manager local` loads this file and answers
POST /invocations ``{"inputs": [{"front_image_base64": "...", "back_image_base64": "..."}, ...]}`` with
``{"predictions": [1874, ...]}``: one year per input, same order. The same rows may come as ``dataframe_records``,
``dataframe_split`` (with ``columns``) or ``instances``: the model's signature (training.ml.tracking.packaging
.model_signature) is two columns and a ``details`` parameter, so MLflow's scoring server parses every one
of its four bodies into a DataFrame of those columns. A signature taken from a predict type hint would make the
scoring server refuse every body but ``inputs`` (mlflow 3.17 pyfunc/scoring_server: "Request payload must be a
dictionary with 'inputs' key when the model contains a valid type hint"), so predict's input is hinted as a
pandas DataFrame, a hint MLflow takes no signature from (and what MLflow passes it).

Decoding and preprocessing are training.ml.images' (decode_base64, then preprocess_batch: the same evaluation path
as training), and the predictor is built by training.ml.tracking.predictor_from_files, the same function the
Django inference workers use, so the three roads to a year (in memory, load_predictor, this pyfunc) cannot drift.
A photo that is not valid base64 or not an image raises MlflowException INVALID_PARAMETER_VALUE (HTTP 400) naming
the input and the side, never a 500.

No ``from __future__ import annotations`` here: MLflow reads the predict type hints at runtime.
"""

import math
import os
import re
from collections.abc import Mapping
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
import pydantic  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.pyfunc import PythonModel, PythonModelContext  # noqa: E402

from training.ml import fusion, images  # noqa: E402
from training.ml.ensemble import prediction_details  # noqa: E402
from training.ml.tracking.loading import predictor_from_files  # noqa: E402

# Rows per forward pass: bounds memory for a large request without changing any result.
CHUNK = 32


SIDES = ("front_image_base64", "back_image_base64")


class CoinPhotos(pydantic.BaseModel):
    """One coin of the Model-Serving JSON: both photos, base64 (standard or URL-safe, data: URLs allowed)."""

    front_image_base64: str
    back_image_base64: str


def input_rows(model_input: Any) -> list[tuple[Any, Any]]:
    """(front, back) base64 texts per input, in order, from what predict gets: the DataFrame MLflow builds from any
    of the four bodies, or a list of dicts or CoinPhotos (a direct call). Values are checked by the caller: a
    column-oriented body (``{"inputs": {"front_image_base64": [...], ...}}``) arrives as one row of lists and is
    refused there, as /api/predict refuses it."""
    if hasattr(model_input, "columns") and hasattr(model_input, "__getitem__"):  # a pandas DataFrame
        missing = [side for side in SIDES if side not in model_input.columns]
        if missing:
            raise MlflowException.invalid_parameter_value(f"inputs: the column {missing[0]} is missing")
        return list(zip(model_input[SIDES[0]].tolist(), model_input[SIDES[1]].tolist(), strict=True))
    if isinstance(model_input, Mapping | str | bytes):
        raise MlflowException.invalid_parameter_value(
            "inputs must be a list of objects with front_image_base64 and back_image_base64"
        )
    rows = []
    for index, item in enumerate(model_input):
        if isinstance(item, dict):
            try:
                item = CoinPhotos(**item)
            except pydantic.ValidationError as error:
                raise MlflowException.invalid_parameter_value(f"inputs[{index}]: {error}") from error
        rows.append((item.front_image_base64, item.back_image_base64))
    return rows


def year_of(row) -> int:
    """The year reported for one [year, low, high] row: the same rounding as predictions.inference."""
    return int(round(float(row[0])))


class CoinYearModel(PythonModel):
    """Fold ensemble of coin-year; ONNX Runtime when available, PyTorch from the fold state dicts otherwise.

    The environment variable COINSITE_MODEL_BACKEND=torch (read when the model loads) forces the PyTorch fallback;
    "onnx" forces ONNX Runtime; unset or "auto" picks ONNX Runtime when it is importable.
    """

    def load_context(self, context: PythonModelContext) -> None:
        backend = os.environ.get("COINSITE_MODEL_BACKEND", "").strip().lower() or "auto"
        self.predictor, self.config, self.backend, self.calibration = predictor_from_files(
            context.artifacts, backend=backend
        )

    def _decode(self, model_input: Any) -> list[tuple[bytes, bytes]]:
        pairs = []
        for index, row in enumerate(input_rows(model_input)):
            sides = []
            for side, text in zip(("front", "back"), row, strict=True):
                if not isinstance(text, str):
                    missing = text is None or (isinstance(text, float) and math.isnan(text))
                    reason = "is missing" if missing else "must be a string holding the photo's bytes in base64"
                    raise MlflowException.invalid_parameter_value(f"inputs[{index}].{side}_image_base64 {reason}")
                try:
                    sides.append(images.decode_base64(text))
                except images.ImageError as error:
                    raise MlflowException.invalid_parameter_value(
                        f"inputs[{index}].{side}_image_base64: {error} (code {error.code})"
                    ) from error
            pairs.append((sides[0], sides[1]))
        return pairs

    def predict(self, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list:
        """One minting year per input pair, in order; None for an input judged not a coin or unreadable.

        With ``params={"details": True}`` (a parameter of the signature, default false; in process, or
        ``"params": {"details": true}`` in the body sent to `mlflow models serve`) the answer is the API's ``details``
        list instead: per input the year, its interval and level, the coin score and the alternatives, or why there is
        no year. MLflow's scoring server wraps whatever predict returns in {"predictions": ...}, so there the details
        come as ``{"predictions": [{...}, ...]}``; /api/predict answers both lists.
        """
        want_details = bool((params or {}).get("details"))
        calibration = self.calibration.get("calibration") or self.calibration
        pairs = self._decode(model_input)
        years: list[int] = []
        for start in range(0, len(pairs), CHUNK):
            chunk = pairs[start : start + CHUNK]
            try:
                looked = self.predictor.read_bytes(chunk, calibration)  # second look, then the OCR (fusion.py)
            except images.ImageError as error:
                where = _request_field(error.field, start, len(chunk))
                raise MlflowException.invalid_parameter_value(f"{where}: {error} (code {error.code})") from error
            for index, row in enumerate(looked.rows):
                details = fusion.annotate(prediction_details(row, self.config, calibration), looked, index)
                years.append(details if want_details else (None if "rejected" in details else year_of(row)))
        return years


def _request_field(field, offset: int, count: int) -> str:
    """preprocess_batch's field ("front_image", or "inputs[i].front_image" in a batch) as the request names it."""
    match = re.fullmatch(r"(?:inputs\[(\d+)\]\.)?(front|back)_image", field or "")
    if not match:
        return field or "inputs"
    index = int(match.group(1) or 0) if count > 1 else 0
    return f"inputs[{offset + index}].{match.group(2)}_image_base64"


mlflow.models.set_model(CoinYearModel())
