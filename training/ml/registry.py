"""MLflow for coin-year: tracking a training run, logging and registering the model, aliases, loading for inference.

This is the only module of the project that imports mlflow (besides pyfunc.py, the MLflow model file itself). It
knows nothing of Django: the tracking URI, the artifact root and the experiment come in as arguments (the Django
side passes its settings through training.mlflow_access.mlflow_ready()).

Why the shapes below:
- One parent run per training run, one nested run per fold: the MLflow UI compares folds and runs side by side, and
  the parent carries what the admin shows (mean/std over folds, the median baseline, the interval coverage, and the
  flat per-fold keys ``fold_<k>_<metric>``).
- The registered model is a models-from-code pyfunc (pyfunc.py) carrying the ONNX export of the fold ensemble, the
  fold state dicts (PyTorch fallback), the config and the interval calibration, plus a copy of the ``training``
  package (``training/__init__.py`` and ``training/ml``), so `mlflow models serve` runs exactly the preprocessing
  used in training without this repository.
- Inference processes load a version through load_predictor(): the files of a version are downloaded once into a
  cache keyed by name, version AND the logged model's identity (two stores with a "version 1" never share files),
  so swapping to a version seen before costs only the ONNX session creation.
- A failed training run (anything raised inside ``with TrainingTracker(...)``) ends FAILED and rolls back any
  version it registered; the very first version of a name gets the alias ``production`` only when its run ends
  successfully. A failed or cancelled run never changes what Production serves.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Workers download models in the background; a tqdm bar per download only clutters their logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import math
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode

if TYPE_CHECKING:
    import torch

    from training.ml.config import TrainConfig

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "coin-year"
DEFAULT_EXPERIMENT = "coin-year"
PRODUCTION_ALIAS = "production"
MODEL_ARTIFACT_NAME = "model"
PYFUNC_PATH = Path(__file__).resolve().with_name("pyfunc.py")
TRAINING_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the repository's training/ (a Django app; we ship only ml/)

# File names of the model's artifacts (keys are how pyfunc.py and load_predictor find them).
ARTIFACT_FILES = {
    "onnx": "ensemble.onnx",
    "fold_states": "fold_states.pt",
    "config": "config.json",
    "calibration": "calibration.json",
}
# Run artifacts written by TrainingTracker.log_result.
METRICS_JSON = "metrics.json"
MANIFEST_JSON = "dataset_manifest.json"
LEARNING_CURVES_PNG = "plots/learning_curves.png"
PRED_VS_TRUE_PNG = "plots/predicted_vs_true.png"
INTERVAL_PNG = "plots/interval_sharpness.png"
ERROR_BY_DECADE_PNG = "plots/error_by_decade.png"

BACKENDS = ("auto", "onnx", "torch")
_PARAM_VALUE_LIMIT = 6000
_COMPLETE_MARKER = ".complete"


# --- configuration ---------------------------------------------------------------------------------------------


@dataclass
class _State:
    tracking_uri: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    experiment_id: str | None = None
    artifact_location: str | None = None  # of the configured experiment, when we chose it (local stores)


_state = _State()
_state_lock = threading.Lock()


def _is_remote_store(uri: str) -> bool:
    """A tracking server (or Databricks) decides where artifacts go; a local store (sqlite, file, database) takes ours."""
    scheme = urlparse(uri).scheme.lower()
    return scheme in {"http", "https", "databricks", "databricks-uc", "uc"}


def _artifact_uri(root: str) -> str:
    """A folder path becomes a file:// URI; anything with a scheme (s3://, gs://, file://...) is kept as it is."""
    parsed = urlparse(root)
    if parsed.scheme and len(parsed.scheme) > 1:  # "C:" is a drive letter, not a scheme
        return root
    path = Path(root).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def configure(tracking_uri: str, *, artifact_root: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> str:
    """Point MLflow tracking and registry at ``tracking_uri`` and make sure the experiment exists; returns its id.

    Works for the embedded default (``sqlite:///var/mlflow.db`` with a local artifact folder) and for a tracking
    server (``http://host:5000``; the server then owns the artifact location and ``artifact_root`` is ignored).
    Idempotent and safe when two processes create the experiment at once.
    """
    if tracking_uri.startswith("sqlite:///"):
        db_path = tracking_uri[len("sqlite:///") :]
        if db_path and db_path != ":memory:":
            Path(db_path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    location = _artifact_uri(artifact_root) if artifact_root and not _is_remote_store(tracking_uri) else None
    found = client.get_experiment_by_name(experiment)
    if found is None:
        try:
            experiment_id = client.create_experiment(experiment, artifact_location=location)
        except MlflowException as error:  # created by another process meanwhile
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            experiment_id = client.get_experiment_by_name(experiment).experiment_id
    else:
        experiment_id = found.experiment_id
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
    with _state_lock:
        _state.tracking_uri = tracking_uri
        _state.experiment = experiment
        _state.experiment_id = experiment_id
        _state.artifact_location = location
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _client() -> MlflowClient:
    uri = _state.tracking_uri or mlflow.get_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(experiment: str | None) -> str:
    """Id of the named experiment (created when missing), or of the configured one."""
    if experiment is None or experiment == _state.experiment:
        if _state.experiment_id is None:
            raise RuntimeError("training.ml.registry.configure(tracking_uri) must be called first")
        return _state.experiment_id
    client = _client()
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    location = f"{_state.artifact_location.rstrip('/')}/{_safe(experiment)}" if _state.artifact_location else None
    try:
        return client.create_experiment(experiment, artifact_location=location)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
        return client.get_experiment_by_name(experiment).experiment_id


# --- small helpers -------------------------------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _number(value: Any) -> float | None:
    """A float for MLflow, or None for anything that is not a real number (bools count as numbers)."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # 0-d numpy array / torch tensor
        try:
            return float(value.item())
        except (TypeError, ValueError):
            return None
    return None


_METRIC_NAME_BAD = re.compile(r"[^0-9A-Za-z_\-. /]")


def _metric_name(name: str) -> str:
    return _METRIC_NAME_BAD.sub("_", str(name))


def flatten_metrics(metrics: Mapping[str, Any] | None, *, prefix: str = "") -> dict[str, float]:
    """{"a": 1, "b": {"c": 2}} -> {"a": 1.0, "b_c": 2.0}; non-numeric values are left out."""
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_metrics(value, prefix=f"{name}_"))
            continue
        number = _number(value)
        if number is not None:
            out[_metric_name(name)] = number
    return out


def _jsonable(value: Any) -> Any:
    """Numbers, arrays, tensors, paths and dataclasses to plain JSON; NaN/inf to None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if hasattr(value, "detach") and hasattr(value, "tolist"):  # torch tensor
        return _jsonable(value.detach().cpu().tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    return value if value is None or isinstance(value, str) else str(value)


def _config_dict(config: Any) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    raise TypeError(f"config must be a mapping or a TrainConfig, got {type(config).__name__}")


def _log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
    items = [Metric(key=k, value=float(v), timestamp=_now_ms(), step=int(step)) for k, v in metrics.items()]
    for start in range(0, len(items), 500):
        client.log_batch(run_id, metrics=items[start : start + 500])


def _write_artifact(folder: Path, name: str, value: Any) -> Path:
    """Write one artifact value to folder/name: a matplotlib Figure as PNG, bytes as they are, an existing file
    copied, anything else as JSON."""
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(value, "savefig"):
        value.savefig(target, format=target.suffix.lstrip(".") or "png", dpi=110)
    elif isinstance(value, (bytes, bytearray)):
        target.write_bytes(bytes(value))
    elif isinstance(value, Path) or (isinstance(value, str) and not name.endswith(".json") and Path(value).is_file()):
        shutil.copyfile(value, target)
    elif isinstance(value, str) and not name.endswith(".json"):
        target.write_text(value, encoding="utf-8")
    else:
        target.write_text(json.dumps(_jsonable(value), indent=2, sort_keys=True), encoding="utf-8")
    return target


def _log_artifact_values(client: MlflowClient, run_id: str, artifacts: Mapping[str, Any]) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="coinsite-artifacts-") as tmp:
        names = []
        for name, value in artifacts.items():
            path = _write_artifact(Path(tmp), name, value)
            parent = str(Path(name).parent)
            client.log_artifact(run_id, str(path), artifact_path=None if parent in ("", ".") else parent)
            names.append(name)
        return names


def manifest_sha256(manifest: Sequence[Mapping[str, Any]]) -> str:
    """Content hash of a dataset manifest (order-sensitive, key-order-insensitive)."""
    canonical = json.dumps(_jsonable(list(manifest)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- the training tracker ------------------------------------------------------------------------------------------


def summary_metrics(fit_result: Any) -> dict[str, float]:
    """The parent run's flat metrics from a FitResult.

    mean over folds under the plain name (mae, mse, r2, within_5, within_10), std as <name>_std, the constant
    baseline as baseline_<name>, interval_coverage / interval_halfwidth, and fold_<k>_<name> (k from 1).
    """
    out: dict[str, float] = {}
    for key, value in (getattr(fit_result, "metrics", None) or {}).items():
        number = _number(value)
        if number is None:
            continue
        name = str(key)
        if name.endswith("_mean"):
            name = name[: -len("_mean")]
        elif name.startswith("mean_"):
            name = name[len("mean_") :]
        elif name.startswith("std_"):
            name = name[len("std_") :] + "_std"
        out[_metric_name(name)] = number
    for key, value in (getattr(fit_result, "baseline_metrics", None) or {}).items():
        number = _number(value)
        if number is not None:
            out[_metric_name(f"baseline_{key}")] = number
    for attr in ("interval_coverage", "interval_halfwidth"):
        number = _number(getattr(fit_result, attr, None))
        if number is not None:
            out[attr] = number
    for k, fold in enumerate(getattr(fit_result, "fold_metrics", None) or [], start=1):
        for key, value in fold.items():
            number = _number(value)
            if number is not None:
                out[_metric_name(f"fold_{k}_{key}")] = number
    return out


def _oof(fit_result: Any) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(getattr(fit_result, "oof_true", []), dtype=float).ravel()
    pred = np.asarray(getattr(fit_result, "oof_pred", []), dtype=float)
    if pred.ndim == 2:  # (N, 3) [year, low, high]
        pred = pred[:, 0]
    pred = pred.ravel()
    keep = np.isfinite(true) & np.isfinite(pred)
    return true[keep], pred[keep]


class TrainingTracker:
    """One MLflow parent run for one training run, with one nested run per fold.

    ::

        with TrainingTracker(config, run_name="weekly", tags={"trigger": "beat"}) as tracker:
            result = fit(config, samples, on_epoch=tracker.on_epoch)
            tracker.log_result(result, manifest)
            tracker.log_model(result)
            version = tracker.register("coin-year")

    Leaving the block by an exception ends every run FAILED (the error is kept as the tag ``error``) and deletes a
    version registered inside the block, so a failed run never reaches Production. The alias ``production`` of a
    name's very first version is set only when the block ends successfully, for the same reason. ``on_epoch`` is
    thread-safe (fit may call it from any thread).
    """

    def __init__(
        self,
        config: Any,
        *,
        experiment: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.config_dict = _config_dict(config)
        self.experiment = experiment
        self.run_name = run_name
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.model_uri: str | None = None
        self.registered: list[tuple[str, int]] = []
        self.status: str | None = None  # FINISHED / FAILED once ended
        self._pending_production: list[tuple[str, int]] = []
        self.history: dict[Any, list[dict]] = {}
        self._fold_runs: dict[Any, str] = {}
        self._lock = threading.Lock()
        self._client: MlflowClient | None = None

    # -- lifecycle --

    def __enter__(self) -> TrainingTracker:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None:
            self.fail(exc)
            return False
        try:
            self.end("FINISHED")
        except BaseException as error:  # e.g. the store went away while ending: the run did not succeed
            self.fail(error)
            raise
        return False

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = _client()
        return self._client

    def start(self) -> str:
        """Create the parent run and log the whole config as params; returns the run id."""
        self.experiment_id = _experiment_id(self.experiment)
        tags = {"mlflow.source.type": "JOB", "coinsite.kind": "training", **self.tags}
        run = self.client.create_run(self.experiment_id, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        params = [Param(str(k), str(v)[:_PARAM_VALUE_LIMIT]) for k, v in sorted(self.config_dict.items())]
        for start in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[start : start + 100])
        _log_artifact_values(self.client, self.run_id, {"config.json": self.config_dict})
        return self.run_id

    def end(self, status: str = "FINISHED") -> None:
        """End the nested runs and the parent with ``status``; a successful end first gives a name's first
        version its ``production`` alias."""
        if status == "FINISHED":
            for name, version in self._pending_production:
                _claim_production(self.client, name, version)
            self._pending_production.clear()
        with self._lock:
            for run_id in self._fold_runs.values():
                self.client.set_terminated(run_id, status)
        if self.run_id:
            self.client.set_terminated(self.run_id, status)
        self.status = status

    def fail(self, error: BaseException | str) -> None:
        """End the run FAILED and roll back versions registered by it. Never raises (the original error wins)."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        for name, version in list(self.registered):
            try:
                _rollback_version(self.client, name, version)
            except Exception:  # pragma: no cover - best effort; logged for the operator
                logger.exception("could not roll back %s v%s of failed run %s", name, version, self.run_id)
        self.registered.clear()
        self._pending_production.clear()
        try:
            if self.run_id:
                self.client.set_tag(self.run_id, "error", text[:5000])
            self.end("FAILED")
        except Exception:  # pragma: no cover
            logger.exception("could not mark MLflow run %s FAILED", self.run_id)

    def _require_run(self) -> str:
        if self.run_id is None:
            raise RuntimeError("TrainingTracker is not started: use it as a context manager")
        return self.run_id

    # -- per epoch --

    def fold_run_id(self, fold: Any) -> str:
        """The nested run of a fold, created on first use."""
        parent = self._require_run()
        with self._lock:
            run_id = self._fold_runs.get(fold)
            if run_id is None:
                run = self.client.create_run(
                    self.experiment_id,
                    run_name=f"fold-{fold}",
                    tags={"mlflow.parentRunId": parent, "coinsite.fold": str(fold), **self.tags},
                )
                run_id = self._fold_runs[fold] = run.info.run_id
            return run_id

    def on_epoch(self, fold: int, epoch: int, metrics: Mapping[str, Any]) -> None:
        """Log one epoch of one fold (train loss, validation MAE, ...) to the fold's nested run, step = epoch."""
        run_id = self.fold_run_id(fold)
        numbers = flatten_metrics(metrics)
        with self._lock:
            self.history.setdefault(fold, []).append({"epoch": int(epoch), **numbers})
        _log_metrics(self.client, run_id, numbers, step=int(epoch))

    # -- after fit --

    def log_result(
        self,
        fit_result: Any,
        manifest: Sequence[Mapping[str, Any]],
        extra_metrics: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Log the result of fit(): metrics, metrics.json, the three plots and the dataset manifest.

        Returns the JSON-ready summary written as metrics.json: FitResult.to_dict() (without the config) plus
        {"summary": the flat metrics logged on the parent run, "folds": [per-fold metrics], "baseline": {...},
        "interval": {...}, "mae_by_decade": {"1870": mae, ...}, "count_by_decade", "dataset": {size, sha256},
        "extra": extra_metrics}. The Django side can store it as TrainingRun.metrics as it is.
        """
        from training.ml import plots

        run_id = self._require_run()
        config = getattr(fit_result, "config", None) or self.config
        year_min = int(getattr(config, "year_min", 1700))
        year_max = int(getattr(config, "year_max", 2025))
        flat = summary_metrics(fit_result)
        flat.update(flatten_metrics(extra_metrics))
        flat["dataset_size"] = float(len(manifest))
        _log_metrics(self.client, run_id, flat)

        fold_metrics = [dict(m) for m in (getattr(fit_result, "fold_metrics", None) or [])]
        fold_keys = self._fold_keys(len(fold_metrics))
        for key, metrics in zip(fold_keys, fold_metrics, strict=True):
            _log_metrics(self.client, self.fold_run_id(key), flatten_metrics(metrics))

        true, pred = _oof(fit_result)
        by_decade = plots.mae_by_decade(true, pred)
        dataset_hash = manifest_sha256(manifest)
        self.client.set_tag(run_id, "coinsite.dataset_sha256", dataset_hash)
        summary = dict(fit_result.to_dict()) if hasattr(fit_result, "to_dict") else {}
        summary.pop("config", None)  # logged as params and config.json already
        summary.update(
            {
                "summary": flat,
                "folds": fold_metrics,
                "baseline": dict(getattr(fit_result, "baseline_metrics", None) or {}),
                "mae_by_decade": {k: v["mae"] for k, v in by_decade.items()},
                "count_by_decade": {k: v["count"] for k, v in by_decade.items()},
                "dataset": {"size": len(manifest), "sha256": dataset_hash},
                "extra": dict(extra_metrics or {}),
            }
        )
        summary.setdefault(
            "interval",
            {
                "level": getattr(config, "interval_level", None),
                "halfwidth": getattr(fit_result, "interval_halfwidth", None),
                "coverage": getattr(fit_result, "interval_coverage", None),
            },
        )
        summary = _jsonable(summary)
        history = self.history or getattr(fit_result, "history", None)
        baseline_mae = _number((getattr(fit_result, "baseline_metrics", None) or {}).get("mae"))
        figures = {
            LEARNING_CURVES_PNG: plots.learning_curves(history),
            PRED_VS_TRUE_PNG: plots.predicted_vs_true(true, pred, year_min=year_min, year_max=year_max),
            ERROR_BY_DECADE_PNG: plots.error_by_decade(true, pred, baseline_mae=baseline_mae),
        }
        rows = np.asarray(getattr(fit_result, "interval_rows", np.zeros((0, 4))))
        if rows.size:  # a date reader: (truth, year, low, high) on coins no fold model saw
            figures[INTERVAL_PNG] = plots.interval_sharpness(
                rows[:, 0], rows[:, 2], rows[:, 3], level=getattr(config, "interval_level", 0.8)
            )
        _log_artifact_values(
            self.client,
            run_id,
            {METRICS_JSON: summary, MANIFEST_JSON: list(manifest), **figures},
        )
        return summary

    def _fold_keys(self, count: int) -> list[Any]:
        """Keys of the nested runs for fold_metrics[0..count): the ones on_epoch used, else 1..count."""
        seen = list(self._fold_runs)
        if len(seen) == count:
            return seen
        numeric = [k for k in seen if isinstance(k, int)]
        base = 0 if 0 in numeric else 1
        return [base + i for i in range(count)]

    def log_model(self, fit_result: Any, *, input_example: list[dict] | None = None) -> str:
        """Log the fold ensemble as the models-from-code pyfunc (pyfunc.py); returns the model URI (models:/m-...)."""
        run_id = self._require_run()
        with tempfile.TemporaryDirectory(prefix="coinsite-model-") as tmp:
            artifacts = write_model_artifacts(fit_result, Path(tmp) / "artifacts")
            code = stage_training_package(Path(tmp) / "code")
            example = input_example if input_example is not None else default_input_example()
            info = mlflow.models.Model.log(
                artifact_path=None,
                name=MODEL_ARTIFACT_NAME,
                flavor=mlflow.pyfunc,
                run_id=run_id,
                python_model=str(PYFUNC_PATH),
                artifacts={key: str(path) for key, path in artifacts.items()},
                code_paths=[str(code)],
                input_example=example,
                pip_requirements=pip_requirements(),
                metadata={"coinsite": {"config": _jsonable(self.config_dict)}},
            )
        self.model_uri = info.model_uri
        self.client.set_tag(run_id, "coinsite.model_uri", self.model_uri)
        return self.model_uri

    def register(self, model_name: str = DEFAULT_MODEL_NAME, *, serve_if_first: bool = True) -> int:
        """Register the logged model; returns the version.

        The very first version of a name becomes Production, when the run ends successfully (at the end of the
        ``with`` block; at once when the tracker has already ended FINISHED), unless ``serve_if_first`` is False
        (a model that does not beat the constant baseline never serves on its own). Any later version leaves the
        aliases.
        """
        self._require_run()
        if self.model_uri is None:
            raise RuntimeError("log_model() must be called before register()")
        version, first = _register(self.model_uri, model_name, run_id=self.run_id)
        self.registered.append((model_name, version))
        if first and serve_if_first:
            if self.status == "FINISHED":
                _claim_production(self.client, model_name, version)
            else:
                self._pending_production.append((model_name, version))
        return version


def log_training(
    fit_result: Any,
    manifest: Sequence[Mapping[str, Any]],
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    experiment: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    extra_metrics: Mapping[str, Any] | None = None,
) -> tuple[str, int]:
    """Log a finished fit as one run (result, plots, manifest, model) and register it: (run_id, version).

    For a fit that ran without a tracker (no per-epoch curves in MLflow beyond FitResult.history); training that
    should stream its epochs uses TrainingTracker directly.
    """
    with TrainingTracker(fit_result.config, experiment=experiment, run_name=run_name, tags=tags) as tracker:
        tracker.log_result(fit_result, manifest, extra_metrics=extra_metrics)
        tracker.log_model(fit_result)
        version = tracker.register(model_name)
    return tracker.run_id, version


def _register(model_uri: str, model_name: str, *, run_id: str | None) -> tuple[int, bool]:
    """Create a version; returns (version, whether it is the only version of the name)."""
    client = _client()
    mv = mlflow.register_model(model_uri, model_name, tags={"coinsite.run_id": run_id} if run_id else None)
    version = int(mv.version)
    versions = [int(v.version) for v in client.search_model_versions(f"name = '{_quote(model_name)}'")]
    logger.info("registered %s v%s from run %s", model_name, version, run_id)
    return version, versions == [version]


def _claim_production(client: MlflowClient, name: str, version: int) -> None:
    """Give ``version`` the production alias unless some version holds it already."""
    if PRODUCTION_ALIAS in (client.get_registered_model(name).aliases or {}):
        return
    client.set_registered_model_alias(name, PRODUCTION_ALIAS, str(int(version)))
    logger.info("%s v%s is the first version: alias %s set", name, version, PRODUCTION_ALIAS)


def register_model(model_uri: str, model_name: str = DEFAULT_MODEL_NAME, *, run_id: str | None = None) -> int:
    """Create a version of ``model_name`` from a logged model (outside a tracker); the first version ever gets
    alias ``production`` at once."""
    version, first = _register(model_uri, model_name, run_id=run_id)
    if first:
        _claim_production(_client(), model_name, version)
    return version


def end_run(
    run_id: str, status: str = "FAILED", *, error: str | None = None, model_name: str | None = DEFAULT_MODEL_NAME
) -> list[int]:
    """End a run that its worker left RUNNING (the worker died), with its nested fold runs.

    With an unsuccessful status (FAILED, KILLED), versions of ``model_name`` registered from the run that hold no
    alias are deleted, as the tracker would have done; returns their numbers. Idempotent.
    """
    client = _client()
    run = client.get_run(run_id)
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'", max_results=1000
    )
    for child in children:
        if child.info.status == "RUNNING":
            client.set_terminated(child.info.run_id, status)
    if error:
        client.set_tag(run_id, "error", error[:5000])
    if run.info.status == "RUNNING":
        client.set_terminated(run_id, status)
    removed: list[int] = []
    if status != "FINISHED" and model_name:
        for mv in client.search_model_versions(f"name = '{_quote(model_name)}' and run_id = '{run_id}'"):
            if not mv.aliases:
                _rollback_version(client, model_name, int(mv.version))
                removed.append(int(mv.version))
    return sorted(removed)


def _rollback_version(client: MlflowClient, name: str, version: int) -> None:
    client.delete_model_version(name, str(version))
    if not client.search_model_versions(f"name = '{_quote(name)}'"):
        with contextlib.suppress(MlflowException):
            client.delete_registered_model(name)
    logger.warning("rolled back %s v%s: its training run failed", name, version)


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


# --- model files ------------------------------------------------------------------------------------------------


def write_model_artifacts(fit_result: Any, folder: Path) -> dict[str, Path]:
    """ONNX export of the ensemble, fold state dicts, config.json and calibration.json into ``folder``."""
    import torch

    from training.ml import ensemble as ensemble_mod

    folder.mkdir(parents=True, exist_ok=True)
    config = fit_result.config
    paths = {key: folder / name for key, name in ARTIFACT_FILES.items()}
    ensemble = fit_result.ensemble()
    ensemble.eval()
    ensemble_mod.export_onnx(ensemble, paths["onnx"], config)
    states = [{k: v.detach().cpu() for k, v in state.items()} for state in fit_result.fold_states]
    torch.save(states, paths["fold_states"])
    paths["config"].write_text(json.dumps(_jsonable(config.to_dict()), indent=2, sort_keys=True), encoding="utf-8")
    paths["calibration"].write_text(json.dumps(_jsonable(calibration_of(fit_result)), indent=2), encoding="utf-8")
    return paths


def calibration_of(fit_result: Any) -> dict[str, Any]:
    """What the interval needs besides the weights: the fitted IntervalCalibration and how well it covered."""
    import dataclasses

    calibration = fit_result.calibration
    fields = dataclasses.asdict(calibration) if dataclasses.is_dataclass(calibration) else dict(calibration)
    return {
        "calibration": _jsonable(fields),
        "interval_level": float(fit_result.config.interval_level),
        "interval_halfwidth": _number(getattr(fit_result, "interval_halfwidth", None)),
        "interval_coverage": _number(getattr(fit_result, "interval_coverage", None)),
        "interval_coverage_source": getattr(fit_result, "interval_coverage_source", None),
    }


def stage_training_package(folder: Path) -> Path:
    """A copy of the ``training`` package as the served model needs it: training/__init__.py and training/ml/*.py.

    Only ml/ ships (no Django app modules, no caches, no tests), so `import training.ml.images` works in
    `mlflow models serve` and importing ``training`` there cannot pull in Django.
    """
    target = folder / "training"
    (target / "ml").mkdir(parents=True, exist_ok=True)
    (target / "__init__.py").write_text("", encoding="utf-8")
    source = TRAINING_PACKAGE_DIR / "ml"
    for path in sorted(source.rglob("*.py")):
        if "__pycache__" in path.parts or path.name.startswith("test_"):
            continue
        dest = target / "ml" / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    init = target / "ml" / "__init__.py"
    if not init.exists():
        init.write_text("", encoding="utf-8")
    return target


def pip_requirements() -> list[str]:
    """Pinned requirements of the served model (given explicitly: MLflow's inference would load the model in a
    subprocess just to guess them)."""
    wanted = [
        "mlflow",
        "torch",
        "torchvision",
        "onnxruntime",
        "numpy",
        "pillow",
        "pillow-heif",
        "pybase64",
        "pydantic",
        "PyYAML",
    ]
    out = []
    for name in wanted:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        out.append(f"{name}=={version.split('+')[0]}")
    return out


def default_input_example() -> list[dict[str, str]]:
    """One small synthetic coin as the Model-Serving input example (also gives MLflow a serving example)."""
    import base64

    from training.ml import synthetic

    front, back = synthetic.generate_coin_jpegs(1900, 7, size=64)
    return [
        {
            "front_image_base64": base64.b64encode(front).decode("ascii"),
            "back_image_base64": base64.b64encode(back).decode("ascii"),
        }
    ]


# --- loading a version ----------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A registered version ready for inference: its config (the preprocessing to apply) and the predictor."""

    version: int
    config: TrainConfig
    predictor: Any  # training.ml.ensemble.EnsemblePredictor
    name: str = DEFAULT_MODEL_NAME
    backend: str = "onnx"
    path: str = ""
    calibration: dict = field(default_factory=dict)

    def predict_pairs(self, front: torch.Tensor, back: torch.Tensor) -> np.ndarray:
        """(N,C,H,W) front and back tensors from images.preprocess_batch -> (N, 3+) float [year, low, high, ...]
        (a date-reading version adds coin score, read score and p(year): see ensemble.prediction_details)."""
        return np.asarray(self.predictor.predict(front, back), dtype=np.float64).reshape(len(front), -1)


def predictor_from_files(files: Mapping[str, str], *, backend: str = "auto") -> tuple[Any, TrainConfig, str, dict]:
    """Build the ensemble predictor from a model's artifact files (keys of ARTIFACT_FILES).

    backend "auto" uses ONNX Runtime when it is importable and the ONNX file exists, else PyTorch from the fold
    state dicts; "onnx"/"torch" force one. Returns (predictor, config, backend used, calibration).
    Shared by load_predictor() and pyfunc.py, so both paths build the very same model.
    """
    from training.ml.config import TrainConfig

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    config = TrainConfig.from_dict(json.loads(Path(files["config"]).read_text(encoding="utf-8")))
    calibration = json.loads(Path(files["calibration"]).read_text(encoding="utf-8"))
    onnx_path = files.get("onnx")
    use_onnx = backend == "onnx"
    if backend == "auto":
        try:
            import onnxruntime  # noqa: F401

            use_onnx = bool(onnx_path) and Path(onnx_path).is_file()
        except ImportError:
            use_onnx = False
    if use_onnx:
        return _onnx_predictor(onnx_path, config), config, "onnx", calibration
    return _torch_predictor(files["fold_states"], config, calibration), config, "torch", calibration


SERVING_ORT_THREADS = 1


def _onnx_predictor(path: str, config: TrainConfig) -> Any:
    """ONNX Runtime with one intra-op thread: a served model scores one request's small batch per call, and the
    server's concurrency comes from its requests. ORT's default (a spinning thread per core) was 0.7 ms faster for a
    lone batch-1 call but burned 3.0 ms of CPU for it against 2.1 ms, CPU that concurrent requests need to decode
    their photos (measured on the 3-fold mobilenet ensemble, 2 cores)."""
    from training.ml.ensemble import EnsemblePredictor

    return EnsemblePredictor.from_onnx(path, config, threads=SERVING_ORT_THREADS)


def _torch_predictor(path: str, config: TrainConfig, calibration: Mapping[str, Any]) -> Any:
    import torch

    from training.ml.ensemble import CoinYearEnsemble, EnsemblePredictor

    states = torch.load(path, map_location="cpu", weights_only=True)
    ensemble = CoinYearEnsemble.from_states(states, config, calibration.get("calibration"))
    return EnsemblePredictor.from_torch(ensemble)


def _safe(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]", "_", text)[:80]


def _default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "coinsite-model-cache"


def download_version(name: str, version: int, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Local folder of a version's MLflow model, downloaded once (atomic: a half download is never used)."""
    client = _client()
    mv = client.get_model_version(name, str(version))
    identity = hashlib.sha256(f"{mv.source}|{mv.run_id}|{getattr(mv, 'model_id', '')}".encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir else _default_cache_dir()
    final = root / _safe(name) / f"v{int(version)}-{identity}"
    if (final / _COMPLETE_MARKER).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.parent / f".partial-{uuid.uuid4().hex}"
    try:
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{int(version)}", dst_path=str(partial), tracking_uri=_client().tracking_uri
        )
        (partial / _COMPLETE_MARKER).write_text(mv.source or "", encoding="utf-8")
        try:
            os.rename(partial, final)
        except OSError:  # another process finished first; its copy is as good as ours
            if not (final / _COMPLETE_MARKER).exists():
                shutil.rmtree(final, ignore_errors=True)
                os.rename(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def model_files(model_dir: str | os.PathLike) -> dict[str, str]:
    """Artifact files of a downloaded model folder, by key (read from the MLmodel's pyfunc flavor)."""
    model_dir = Path(model_dir)
    meta = mlflow.models.Model.load(str(model_dir / "MLmodel"))
    declared = (meta.flavors.get("python_function") or {}).get("artifacts") or {}
    files = {}
    for key, name in ARTIFACT_FILES.items():
        entry = declared.get(key)
        relative = entry.get("path") if isinstance(entry, Mapping) else None
        candidate = model_dir / relative if relative else model_dir / "artifacts" / name
        if candidate.exists():
            files[key] = str(candidate)
    missing = {"config", "calibration"} - files.keys()
    if missing or not ({"onnx", "fold_states"} & files.keys()):
        raise MlflowException(f"model folder {model_dir} lacks artifacts: {sorted(missing) or 'weights'}")
    return files


def load_predictor(
    name: str, version: int, *, cache_dir: str | os.PathLike | None = None, backend: str = "auto"
) -> LoadedModel:
    """A registered version ready to predict (files cached under cache_dir; ONNX Runtime when available)."""
    folder = download_version(name, version, cache_dir=cache_dir)
    predictor, config, used, calibration = predictor_from_files(model_files(folder), backend=backend)
    return LoadedModel(
        version=int(version),
        config=config,
        predictor=predictor,
        name=name,
        backend=used,
        path=str(folder),
        calibration=calibration,
    )


# --- registry reads and alias moves -------------------------------------------------------------------------------


def _missing(error: MlflowException) -> bool:
    return error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST) or "not found" in str(error.message).lower()


def get_alias_version(name: str, alias: str = PRODUCTION_ALIAS) -> int | None:
    """Version the alias points to; None when the model or the alias does not exist."""
    try:
        model = _client().get_registered_model(name)
    except MlflowException as error:
        if _missing(error):
            return None
        raise
    version = (model.aliases or {}).get(alias)
    return int(version) if version is not None else None


def set_alias(name: str, alias: str, version: int) -> None:
    """Point ``alias`` at ``version`` (raises MlflowException when the version does not exist)."""
    _client().set_registered_model_alias(name, alias, str(int(version)))


def delete_alias(name: str, alias: str) -> None:
    """Remove an alias; no error when it (or the model) does not exist."""
    try:
        _client().delete_registered_model_alias(name, alias)
    except MlflowException as error:
        if not _missing(error):
            raise


def list_versions(name: str = DEFAULT_MODEL_NAME) -> list[int]:
    """All version numbers of a registered model (empty when it does not exist), ascending."""
    try:
        versions = _client().search_model_versions(f"name = '{_quote(name)}'")
    except MlflowException as error:
        if _missing(error):
            return []
        raise
    return sorted(int(v.version) for v in versions)


def version_info(name: str, version: int) -> dict[str, Any]:
    """run_id, the run's metrics, aliases, creation time (aware UTC datetime) and more of one version."""
    client = _client()
    mv = client.get_model_version(name, str(int(version)))
    metrics: dict[str, float] = {}
    status = None
    if mv.run_id:
        try:
            run = client.get_run(mv.run_id)
            metrics = dict(run.data.metrics)
            status = run.info.status
        except MlflowException as error:
            if not _missing(error):
                raise
    created_ms = int(mv.creation_timestamp or 0)
    return {
        "name": name,
        "version": int(mv.version),
        "run_id": mv.run_id or "",
        "run_status": status,
        "metrics": metrics,
        "aliases": list(mv.aliases or []),
        "creation_time": dt.datetime.fromtimestamp(created_ms / 1000, tz=dt.UTC),
        "creation_timestamp_ms": created_ms,
        "source": mv.source,
        "status": mv.status,
        "tags": dict(mv.tags or {}),
    }


# --- artifacts of runs ------------------------------------------------------------------------------------------


def list_artifacts(run_id: str, path: str = "") -> list[str]:
    """Relative paths of every artifact file of a run under ``path`` (recursive)."""
    client = _client()
    out: list[str] = []
    stack = [path or None]
    while stack:
        current = stack.pop()
        for item in client.list_artifacts(run_id, current):
            if item.is_dir:
                stack.append(item.path)
            else:
                out.append(item.path)
    return sorted(out)


def download_artifact(run_id: str, path: str, *, dst_path: str | None = None) -> str:
    """Local path of one artifact of a run (downloaded into dst_path or a fresh temp folder)."""
    dst = dst_path or tempfile.mkdtemp(prefix="coinsite-artifact-")
    return _client().download_artifacts(run_id, path, dst)


def log_evaluation(
    target: str | int | None,
    metrics: Mapping[str, Any],
    artifacts: Mapping[str, Any] | None = None,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    experiment: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Log an evaluation (e.g. candidate vs Production) into an existing run, or a new run; returns its run id.

    ``target``: a run id (str), a registered version of ``model_name`` (int: its training run), or None for a new
    run in the experiment (ended FINISHED). ``metrics`` may nest ({"candidate": {"mae": 9.1}} -> candidate_mae).
    ``artifacts`` maps artifact names to a matplotlib Figure (PNG), a dict/list (JSON), bytes, text or a file path.
    """
    client = _client()
    created = False
    if target is None:
        run = client.create_run(
            _experiment_id(experiment),
            run_name=run_name or "evaluation",
            tags={"coinsite.kind": "evaluation", **{str(k): str(v) for k, v in (tags or {}).items()}},
        )
        run_id, created = run.info.run_id, True
    elif isinstance(target, int) and not isinstance(target, bool):
        run_id = client.get_model_version(model_name, str(target)).run_id
        if not run_id:
            raise MlflowException(f"{model_name} v{target} has no run to log the evaluation into")
    else:
        run_id = str(target)
    try:
        if tags and not created:
            client.log_batch(run_id, tags=[RunTag(str(k), str(v)) for k, v in tags.items()])
        _log_metrics(client, run_id, flatten_metrics(metrics))
        if artifacts:
            _log_artifact_values(client, run_id, artifacts)
    except BaseException:
        if created:
            client.set_terminated(run_id, "FAILED")
        raise
    if created:
        client.set_terminated(run_id, "FINISHED")
    return run_id
