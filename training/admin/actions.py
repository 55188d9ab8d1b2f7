"""What the owner's buttons and the list drop-downs do: promote, roll back, re-score, cancel.

A page's button (views/) and the changelist's action both call the one function here for a verb, and it calls the
one service for it (registry.services, training.services: the same ones the `retrain` command, Celery and the API
use), so a promotion from the list and one from the detail page cannot differ. Failures become a message the owner
reads, not a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.utils.html import format_html

from registry.models import ModelVersion
from registry.services import model_version_promote, model_version_rollback
from training import errors
from training.models import TrainingRun
from training.services.runs import training_run_cancel

from .presenters import admin_url

logger = logging.getLogger(__name__)

# What a service raises when the request is fine but the action is not possible (already in production, nothing to
# roll back to, an unknown --set key): shown to the owner as an error message. Anything else (MLflow unreachable, a
# bug) is shown too, but logged with its traceback.
EXPECTED_ERRORS = (ValidationError, ValueError, LookupError)



def error_text(error: Exception) -> str:
    """What the owner reads: the reason alone, short and secret-free, by the one masking rule a run's error field
    uses too (training.errors.error_text: URL credentials, ``password=``/``token=``/``secret=`` values, the key)."""
    return errors.error_text(error, with_type=False)


def call_service(request: HttpRequest, action: str, service: Callable[..., Any], **kwargs: Any) -> tuple[bool, Any]:
    """Call one service for an admin page: (True, result), or (False, None) with the reason shown to the owner.

    PermissionDenied passes through (a 403); any other failure becomes a message instead of a 500, because "MLflow
    is down" or "a run is already going" is something the owner must read, not a crash page.
    """
    try:
        return True, service(**kwargs)
    except PermissionDenied:
        raise
    except EXPECTED_ERRORS as error:
        logger.info("admin %s refused: %s", action, error)
        messages.error(request, f"{action} failed: {error_text(error)}")
    except Exception as error:  # noqa: BLE001 - shown to the owner, logged with the traceback
        logger.exception("admin %s failed", action)
        messages.error(request, f"{action} failed: {error_text(error)}")
    return False, None


# -- the verbs --------------------------------------------------------------------------------------------------------


def promote(request: HttpRequest, version: ModelVersion) -> bool:
    """Make `version` Production (only versions of the served model can serve); True when it did."""
    if version.name != settings.MLFLOW_MODEL_NAME:
        messages.error(request, f"{version} is not a version of {settings.MLFLOW_MODEL_NAME}, the served model.")
        return False
    done, _ = call_service(
        request, f"Promoting {version}", model_version_promote, version=version.version, actor=request.user
    )
    if not done:
        return False
    messages.success(
        request,
        format_html(
            'Production is now {}. Coins predicted before keep their prediction: <a href="{}">re-score them</a>.',
            version,
            admin_url(ModelVersion, "rescore"),
        ),
    )
    return True


def roll_back(request: HttpRequest) -> bool:
    """Put back the version that served before the current Production; True when it did."""
    done, promotion = call_service(request, "Rolling back", model_version_rollback, actor=request.user)
    if not done:
        return False
    messages.success(
        request, f"Rolled back: Production is now {promotion.to_version} (was {promotion.from_version or '—'})."
    )
    return True


def cancel(request: HttpRequest, run: TrainingRun) -> bool:
    """Cancel a queued run, or ask a running one to stop at its next check; True when the service accepted."""
    label = f"Training run #{run.pk}"
    done, run = call_service(request, f"Cancelling {label}", training_run_cancel, run=run, actor=request.user)
    if not done:
        return False
    if run.status == TrainingRun.Status.CANCELLED:
        messages.success(request, f"{label} cancelled; Production is unchanged.")
    elif run.status == TrainingRun.Status.RUNNING:
        messages.success(request, f"{label}: cancel requested; it stops at its next check. Production is unchanged.")
    else:
        messages.warning(request, f"{label} had already ended ({run.get_status_display().lower()}).")
    return True


# -- the changelists' drop-down actions -------------------------------------------------------------------------------


@admin.action(description="Promote the selected version to Production", permissions=["promote"])
def promote_selected(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
    if queryset.count() != 1:
        model_admin.message_user(request, "Select exactly one version to promote.", messages.WARNING)
        return
    promote(request, queryset.get())


@admin.action(
    description="Roll back Production to the version before it (select the Production version)",
    permissions=["promote"],
)
def rollback_production(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
    if not queryset.filter(is_production=True).exists():
        model_admin.message_user(request, "Select the current Production version to roll it back.", messages.WARNING)
        return
    roll_back(request)


@admin.action(description="Re-score the coins last predicted by the selected version", permissions=["promote"])
def rescore_selected_version(
    model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ModelVersion]
) -> HttpResponseRedirect | None:
    if queryset.count() != 1:
        model_admin.message_user(request, "Select exactly one version whose coins to re-score.", messages.WARNING)
        return None
    return HttpResponseRedirect(f"{admin_url(ModelVersion, 'rescore')}?version={queryset.get().pk}")


@admin.action(description="Cancel the selected runs (queued or running)", permissions=["train"])
def cancel_selected(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[TrainingRun]) -> None:
    active = queryset.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING])
    if not active.exists():
        model_admin.message_user(request, "None of the selected runs is queued or running.", messages.WARNING)
    for run in active:
        cancel(request, run)
