"""Reads of the training side."""

from __future__ import annotations

from django.conf import settings

from .models import ModelVersion


def production_model_version(*, name: str | None = None) -> ModelVersion | None:
    """The mirror row of the version that alias `production` points to (as last synced)."""
    return ModelVersion.objects.filter(name=name or settings.MLFLOW_MODEL_NAME, is_production=True).first()
