"""The scheduler's decision (django-celery-beat): retrain when enough new verified labels exist."""

from __future__ import annotations

import logging

from django.conf import settings

from ..models import TrainingRun
from ..selectors import new_labels_count
from .lease import training_run_reap_stale
from .runs import training_run_start

logger = logging.getLogger(__name__)


def retrain_if_enough_labels() -> TrainingRun | None:
    """The scheduler's decision: start a run when at least RETRAIN_MIN_NEW_LABELS new verified labels exist since
    the last run's data, and nothing while a run is queued or running."""
    training_run_reap_stale()
    if TrainingRun.objects.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]).exists():
        logger.info("retrain: a run is already queued or running")
        return None
    count = new_labels_count()
    if count < settings.RETRAIN_MIN_NEW_LABELS:
        logger.info("retrain: %s new labels, %s needed", count, settings.RETRAIN_MIN_NEW_LABELS)
        return None
    logger.info("retrain: %s new labels, starting a run", count)
    return training_run_start(requested_by=None)
