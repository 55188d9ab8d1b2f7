"""The one place where the site meets MLflow: configured from settings once per store, then called.

Every function here makes the tracking store ready (idempotent, cheap after the first call) before it calls the
Django-free tracking module, so no caller has to remember the two steps. Code that drives a whole training run
through the tracking module (TrainingTracker, log_evaluation ...) asks for it with tracking().
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from django.conf import settings

from training.ml import tracking as _tracking

PRODUCTION_ALIAS = _tracking.PRODUCTION_ALIAS
STAGING_ALIAS = "staging"

_configured: set[tuple[str, str]] = set()
_lock = threading.Lock()


def mlflow_ready() -> str:
    """Configure MLflow from settings (idempotent, cheap after the first call); returns the tracking URI."""
    key = (settings.MLFLOW_TRACKING_URI, settings.MLFLOW_ARTIFACT_ROOT)
    with _lock:
        if key not in _configured:
            _tracking.configure(
                settings.MLFLOW_TRACKING_URI,
                artifact_root=settings.MLFLOW_ARTIFACT_ROOT,
                experiment=settings.MLFLOW_EXPERIMENT_NAME,
            )
            _configured.clear()  # one store per process at a time (tests switch stores between sessions)
            _configured.add(key)
    return settings.MLFLOW_TRACKING_URI


def experiment_ready(name: str) -> str:
    """Make experiment ``name`` exist with the site's artifact location and be the active one; returns its id.

    mlflow.set_experiment() alone would create it with MLflow's default location, which on the embedded default is
    ./mlruns of whatever folder the process runs in (the pretrain command wrote its base there)."""
    with _lock:
        _configured.clear()  # the tracking module's active experiment is now ``name``; mlflow_ready() redoes its own
        return _tracking.configure(
            settings.MLFLOW_TRACKING_URI, artifact_root=settings.MLFLOW_ARTIFACT_ROOT, experiment=name
        )


def tracking() -> ModuleType:
    """The tracking module, ready for this site's store: for code that drives a run through many of its calls."""
    mlflow_ready()
    return _tracking


def model_name() -> str:
    return settings.MLFLOW_MODEL_NAME


def model_cache_dir() -> str:
    """Where this host keeps downloaded model files (one cache for serving, evaluation and fine-tuning)."""
    return str(Path(settings.VAR_DIR) / "model-cache")


def alias_version(alias: str = PRODUCTION_ALIAS, *, name: str | None = None) -> int | None:
    """The version an alias points to now (the registry is the truth; the mirror rows follow it)."""
    return tracking().get_alias_version(name or model_name(), alias)


def alias_set(alias: str, version: int, *, name: str | None = None) -> None:
    tracking().set_alias(name or model_name(), alias, version)


def alias_delete(alias: str, *, name: str | None = None) -> None:
    tracking().delete_alias(name or model_name(), alias)


def versions_list(*, name: str | None = None) -> list[int]:
    return tracking().list_versions(name or model_name())


def version_info(version: int, *, name: str | None = None) -> dict[str, Any]:
    return tracking().version_info(name or model_name(), version)


def predictor_load(version: int, *, name: str | None = None) -> Any:
    """A registered version loaded for inference (LoadedModel: config, calibration, predict_pairs), through this
    host's cache."""
    return tracking().load_predictor(name or model_name(), version, cache_dir=model_cache_dir())


def artifact_download(run_id: str, artifact: str, *, dst_path: str | None = None) -> str:
    return tracking().download_artifact(run_id, artifact, dst_path=dst_path)


def run_end(run_id: str, *, status: str, error: str | None = None) -> list[int]:
    """End an MLflow run its worker left RUNNING (and drop the versions it registered without an alias)."""
    return tracking().end_run(run_id, status=status, error=error, model_name=model_name())
