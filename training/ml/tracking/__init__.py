"""MLflow for coin-year: the only part of the ML library that imports mlflow (besides pyfunc.py, the MLflow model
file itself, which must subclass mlflow.pyfunc.PythonModel). It knows nothing of Django: the tracking URI, the
artifact root and the experiment come in as arguments (the Django side passes its settings through
training.mlflow_access.mlflow_ready()).

- store.py: configure() a tracking store once per process; the client every other module uses.
- runs.py: TrainingTracker (a parent run per training run, a nested run per fold), log_training, end_run,
  log_evaluation.
- packaging.py: what a registered version is made of (artifact files, the shipped ``training`` code, requirements).
- loading.py: a registered version downloaded once and turned into a predictor (load_predictor, predictor_from_files).
- aliases.py: registering versions, reading them, moving aliases such as ``production``.
- artifacts.py: the names of a run's files and reading them back; values.py: numbers and JSON for MLflow.
- sweeps.py: a hyperparameter sweep's parent run and one nested run per trial (training.ml.tune).

Callers use this package's names (``from training.ml import tracking``; ``tracking.load_predictor(...)``); the
modules are imported for what is not listed in ``__all__`` (tests reading ``store.state``). Each name is imported on
first use (PEP 562's module ``__getattr__``): ``import mlflow`` alone costs 160 MB of RSS and loading pulls in torch,
and the registry's gateway imports this package in every Django process, including ``migrate``, ``collectstatic``,
beat and page-only web workers that never call MLflow. names.py (the model, experiment, alias and artifact names)
imports nothing and is imported at once.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Workers download models in the background; a tqdm bar per download only clutters their logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from training.ml.tracking.names import (  # noqa: E402 - after the environment MLflow reads when it is imported
    DEFAULT_EXPERIMENT,
    DEFAULT_MODEL_NAME,
    ERROR_BY_DECADE_PNG,
    INTERVAL_PNG,
    LEARNING_CURVES_PNG,
    MANIFEST_JSON,
    METRICS_JSON,
    PRED_VS_TRUE_PNG,
    PRODUCTION_ALIAS,
)

# name -> the module of this package that defines it, imported when the name is first read.
_LAZY = {
    **dict.fromkeys(
        ("delete_alias", "get_alias_version", "list_versions", "register_model", "set_alias", "version_info"),
        "aliases",
    ),
    **dict.fromkeys(("download_artifact", "list_artifacts"), "artifacts"),
    **dict.fromkeys(
        ("LoadedModel", "download_version", "load_predictor", "model_files", "predictor_from_files"), "loading"
    ),
    **dict.fromkeys(("TrainingTracker", "end_run", "log_evaluation", "log_training"), "runs"),
    "configure": "store",
    **dict.fromkeys(("flatten_metrics", "manifest_sha256"), "values"),
}
# Modules read as attributes (``tracking.sweeps.trial_run_start``), imported on first use as well.
_LAZY_MODULES = frozenset({"sweeps"})


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` now, and keep the name here so the next read is a plain lookup."""
    if name in _LAZY_MODULES:
        value = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _LAZY_MODULES)

__all__ = [
    "DEFAULT_EXPERIMENT",
    "DEFAULT_MODEL_NAME",
    "ERROR_BY_DECADE_PNG",
    "INTERVAL_PNG",
    "LEARNING_CURVES_PNG",
    "MANIFEST_JSON",
    "METRICS_JSON",
    "PRED_VS_TRUE_PNG",
    "PRODUCTION_ALIAS",
    "LoadedModel",
    "TrainingTracker",
    "configure",
    "delete_alias",
    "download_artifact",
    "download_version",
    "end_run",
    "flatten_metrics",
    "get_alias_version",
    "list_artifacts",
    "list_versions",
    "load_predictor",
    "log_evaluation",
    "log_training",
    "manifest_sha256",
    "model_files",
    "predictor_from_files",
    "register_model",
    "set_alias",
    "sweeps",
    "version_info",
]
