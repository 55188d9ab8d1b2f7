"""Reads of the registry: which version serves, and which served before it."""

from __future__ import annotations

from django.conf import settings

from . import gateway
from .models import ModelVersion, Promotion


def production_model_version(*, name: str | None = None) -> ModelVersion | None:
    """The mirror row of the version that alias `production` points to (as last synced)."""
    return ModelVersion.objects.filter(name=name or settings.MLFLOW_MODEL_NAME, is_production=True).first()


def production_version_registered() -> int | None:
    """The version MLflow alias `production` points to now (the registry is the truth; the mirror follows it)."""
    return gateway.alias_version(gateway.PRODUCTION_ALIAS)


def production_history(*, name: str | None = None) -> list[int]:
    """Which versions served, oldest first, as a stack: promotions push, rollbacks pop."""
    stack: list[int] = []
    promotions = (
        Promotion.objects.filter(name=name or settings.MLFLOW_MODEL_NAME)
        .select_related("to_version")
        .order_by("created_at", "id")
    )
    for promotion in promotions:
        if promotion.action == Promotion.Action.ROLLBACK:
            if stack:
                stack.pop()
            if not stack or stack[-1] != promotion.to_version.version:
                stack.append(promotion.to_version.version)
        else:
            stack.append(promotion.to_version.version)
    return stack
