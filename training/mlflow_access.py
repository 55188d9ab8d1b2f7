"""Where the site meets MLflow: point training.ml.registry at the configured tracking store, once per store."""

from __future__ import annotations

import threading

from django.conf import settings

_configured: set[tuple[str, str]] = set()
_lock = threading.Lock()


def mlflow_ready() -> str:
    """Configure MLflow from settings (idempotent, cheap after the first call); returns the tracking URI."""
    from training.ml import registry

    key = (settings.MLFLOW_TRACKING_URI, settings.MLFLOW_ARTIFACT_ROOT)
    with _lock:
        if key not in _configured:
            registry.configure(
                settings.MLFLOW_TRACKING_URI,
                artifact_root=settings.MLFLOW_ARTIFACT_ROOT,
                experiment=settings.MLFLOW_EXPERIMENT_NAME,
            )
            _configured.clear()  # one store per process at a time (tests switch stores between sessions)
            _configured.add(key)
    return settings.MLFLOW_TRACKING_URI
