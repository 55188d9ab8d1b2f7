"""The site's side of the MLflow model registry: a mirror row per registered version and the audit of alias moves.

The tables keep the names they had when these models lived in the training app (`db_table`), so moving them here
moved no data.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ModelVersion(models.Model):
    """Mirror of one registered MLflow model version, so the site can join predictions and show metrics cheaply."""

    name = models.CharField(max_length=100, default="coin-year")
    version = models.PositiveIntegerField()
    run_id = models.CharField(max_length=64, blank=True)
    # A string reference, not an import: the run that produced a version is the training app's, one layer up.
    training_run = models.OneToOneField(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="model_version"
    )
    metrics = models.JSONField(default=dict, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    is_production = models.BooleanField(default=False)
    promoted_at = models.DateTimeField(null=True, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "training_modelversion"
        ordering = ["-version"]
        permissions = [("promote_modelversion", "Can promote and roll back model versions")]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="modelversion_unique_name_version"),
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(is_production=True), name="modelversion_one_production"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def cv_mae(self) -> float | None:
        return self.metrics.get("mae")


class Promotion(models.Model):
    """Audit row of every move of the `production` alias: who, when, from which version to which."""

    class Action(models.TextChoices):
        PROMOTE = "promote", "Promote"
        ROLLBACK = "rollback", "Roll back"
        AUTO = "auto", "Auto-promote"
        INITIAL = "initial", "First version"

    name = models.CharField(max_length=100, default="coin-year")
    from_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotions")
    action = models.CharField(max_length=10, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "training_promotion"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action}: {self.from_version} → {self.to_version}"
