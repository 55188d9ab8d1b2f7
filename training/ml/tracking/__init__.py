"""MLflow for coin-year: the only part of the ML library that imports mlflow (besides pyfunc.py, the MLflow model
file itself, which must subclass mlflow.pyfunc.PythonModel). It knows nothing of Django: the tracking URI, the
artifact root and the experiment come in as arguments (the Django side passes its settings through
training.mlflow_access.mlflow_ready()).

- store.py: configure() a tracking store once per process; the client every other module uses.
- runs.py: TrainingTracker (a parent run per training run, a nested run per fold), log_training, end_run,
  log_evaluation.
- packaging.py: what a registered version is made of (artifact files, the shipped ``training`` code, requirements).
- loading.py: a registered version downloaded once and turned into a predictor (load_predictor, predictor_from_files).
- sweeps.py: a hyperparameter sweep's parent run and one nested run per trial (training.ml.tune).
- aliases.py: registering versions, reading them, moving aliases such as ``production``.
- artifacts.py: the names of a run's files and reading them back; values.py: numbers and JSON for MLflow.

Callers use this package's names (``from training.ml import tracking``; ``tracking.load_predictor(...)``); the
modules are imported for what is not listed in ``__all__`` (tests reading ``store.state``).
"""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Workers download models in the background; a tqdm bar per download only clutters their logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from training.ml.tracking import sweeps  # noqa: E402  (a sweep's parent run and its trials' nested runs)
from training.ml.tracking.aliases import (  # noqa: E402
    delete_alias,
    get_alias_version,
    list_versions,
    register_model,
    set_alias,
    version_info,
)
from training.ml.tracking.artifacts import (  # noqa: E402
    ERROR_BY_DECADE_PNG,
    INTERVAL_PNG,
    LEARNING_CURVES_PNG,
    MANIFEST_JSON,
    METRICS_JSON,
    PRED_VS_TRUE_PNG,
    download_artifact,
    list_artifacts,
)
from training.ml.tracking.loading import (  # noqa: E402
    LoadedModel,
    download_version,
    load_predictor,
    model_files,
    predictor_from_files,
)
from training.ml.tracking.runs import TrainingTracker, end_run, log_evaluation, log_training  # noqa: E402
from training.ml.tracking.store import (  # noqa: E402
    DEFAULT_EXPERIMENT,
    DEFAULT_MODEL_NAME,
    PRODUCTION_ALIAS,
    configure,
)
from training.ml.tracking.values import flatten_metrics, manifest_sha256  # noqa: E402

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
