"""Tracking a training run in MLflow: the parent run, one nested run per fold, its metrics, plots and model.

Why the shapes below: one parent run per training run and one nested run per fold, so the MLflow UI compares folds
and runs side by side; the parent carries what the admin shows (mean/std over folds, the median baseline, the
interval coverage, and the flat per-fold keys ``fold_<k>_<metric>``). A failed training run (anything raised inside
``with TrainingTracker(...)``) ends FAILED and rolls back any version it registered; the very first version of a
name gets the alias ``production`` only when its run ends successfully. A failed or cancelled run never changes what
Production serves.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from training.ml.tracking import store
from training.ml.tracking.aliases import claim_production, register_version, rollback_version
from training.ml.tracking.artifacts import log_artifact_values
from training.ml.tracking.names import (
    DEFAULT_MODEL_NAME,
    ERROR_BY_DECADE_PNG,
    INTERVAL_PNG,
    LEARNING_CURVES_PNG,
    MANIFEST_JSON,
    METRICS_JSON,
    PRED_VS_TRUE_PNG,
)
from training.ml.tracking.packaging import (
    MODEL_ARTIFACT_NAME,
    PYFUNC_PATH,
    default_input_example,
    model_signature,
    pip_requirements,
    stage_training_package,
    write_model_artifacts,
)
from training.ml.tracking.values import (
    as_number,
    config_dict,
    flatten_metrics,
    jsonable,
    manifest_sha256,
    metric_name,
    now_ms,
)

logger = logging.getLogger(__name__)

_PARAM_VALUE_LIMIT = 6000


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
    """Log metrics in batches of 500 (one request each instead of one per metric)."""
    items = [Metric(key=k, value=float(v), timestamp=now_ms(), step=int(step)) for k, v in metrics.items()]
    for start in range(0, len(items), 500):
        client.log_batch(run_id, metrics=items[start : start + 500])


def summary_metrics(fit_result: Any) -> dict[str, float]:
    """The parent run's flat metrics from a FitResult.

    mean over folds under the plain name (mae, mse, r2, within_5, within_10), std as <name>_std, the constant
    baseline as baseline_<name>, interval_coverage / interval_halfwidth, and fold_<k>_<name> (k from 1).
    """
    out: dict[str, float] = {}
    for key, value in (getattr(fit_result, "metrics", None) or {}).items():
        number = as_number(value)
        if number is None:
            continue
        name = str(key)
        if name.endswith("_mean"):
            name = name[: -len("_mean")]
        elif name.startswith("mean_"):
            name = name[len("mean_") :]
        elif name.startswith("std_"):
            name = name[len("std_") :] + "_std"
        out[metric_name(name)] = number
    for key, value in (getattr(fit_result, "baseline_metrics", None) or {}).items():
        number = as_number(value)
        if number is not None:
            out[metric_name(f"baseline_{key}")] = number
    for attr in ("interval_coverage", "interval_halfwidth"):
        number = as_number(getattr(fit_result, attr, None))
        if number is not None:
            out[attr] = number
    for k, fold in enumerate(getattr(fit_result, "fold_metrics", None) or [], start=1):
        for key, value in fold.items():
            number = as_number(value)
            if number is not None:
                out[metric_name(f"fold_{k}_{key}")] = number
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
        self.config_dict = config_dict(config)
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
            self._client = store.client()
        return self._client

    def start(self) -> str:
        """Create the parent run and log the whole config as params; returns the run id."""
        self.experiment_id = store.experiment_id(self.experiment)
        tags = {"mlflow.source.type": "JOB", "coinsite.kind": "training", **self.tags}
        run = self.client.create_run(self.experiment_id, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        params = [Param(str(k), str(v)[:_PARAM_VALUE_LIMIT]) for k, v in sorted(self.config_dict.items())]
        for start in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[start : start + 100])
        log_artifact_values(self.client, self.run_id, {"config.json": self.config_dict})
        return self.run_id

    def end(self, status: str = "FINISHED") -> None:
        """End the nested runs and the parent with ``status``; a successful end first gives a name's first
        version its ``production`` alias."""
        if status == "FINISHED":
            for name, version in self._pending_production:
                claim_production(self.client, name, version)
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
                rollback_version(self.client, name, version)
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
        log_metrics(self.client, run_id, numbers, step=int(epoch))

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
        from training.ml import plots  # lazy: matplotlib costs ~0.3 s, web and worker processes import tracking

        run_id = self._require_run()
        config = getattr(fit_result, "config", None) or self.config
        year_min = int(getattr(config, "year_min", 1700))
        year_max = int(getattr(config, "year_max", 2025))
        flat = summary_metrics(fit_result)
        flat.update(flatten_metrics(extra_metrics))
        negatives = sum(1 for row in manifest if row.get("negative"))  # curators' non-coins: no year, not a label
        flat["dataset_size"] = float(len(manifest) - negatives)
        if negatives:
            flat["dataset_negatives"] = float(negatives)
        log_metrics(self.client, run_id, flat)

        fold_metrics = [dict(m) for m in (getattr(fit_result, "fold_metrics", None) or [])]
        fold_keys = self._fold_keys(len(fold_metrics))
        for key, metrics in zip(fold_keys, fold_metrics, strict=True):
            log_metrics(self.client, self.fold_run_id(key), flatten_metrics(metrics))

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
        summary = jsonable(summary)
        history = self.history or getattr(fit_result, "history", None)
        baseline_mae = as_number((getattr(fit_result, "baseline_metrics", None) or {}).get("mae"))
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
        log_artifact_values(
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
            # the example carries the parameter too, so the saved serving example shows how to ask for the details
            info = mlflow.models.Model.log(
                artifact_path=None,
                name=MODEL_ARTIFACT_NAME,
                flavor=mlflow.pyfunc,
                run_id=run_id,
                python_model=str(PYFUNC_PATH),
                artifacts={key: str(path) for key, path in artifacts.items()},
                code_paths=[str(code)],
                signature=model_signature(),
                input_example=(example, {"details": False}),
                pip_requirements=pip_requirements(),
                metadata={"coinsite": {"config": jsonable(self.config_dict)}},
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
        version, first = register_version(self.model_uri, model_name, run_id=self.run_id)
        self.registered.append((model_name, version))
        if first and serve_if_first:
            if self.status == "FINISHED":
                claim_production(self.client, model_name, version)
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


def end_run(
    run_id: str, status: str = "FAILED", *, error: str | None = None, model_name: str | None = DEFAULT_MODEL_NAME
) -> list[int]:
    """End a run that its worker left RUNNING (the worker died), with its nested fold runs.

    With an unsuccessful status (FAILED, KILLED), versions of ``model_name`` registered from the run that hold no
    alias are deleted, as the tracker would have done; returns their numbers. Idempotent.
    """
    client = store.client()
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
        for mv in client.search_model_versions(f"name = '{store.quote(model_name)}' and run_id = '{run_id}'"):
            if not mv.aliases:
                rollback_version(client, model_name, int(mv.version))
                removed.append(int(mv.version))
    return sorted(removed)


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
    client = store.client()
    created = False
    if target is None:
        run = client.create_run(
            store.experiment_id(experiment),
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
        log_metrics(client, run_id, flatten_metrics(metrics))
        if artifacts:
            log_artifact_values(client, run_id, artifacts)
    except BaseException:
        if created:
            client.set_terminated(run_id, "FAILED")
        raise
    if created:
        client.set_terminated(run_id, "FINISHED")
    return run_id
