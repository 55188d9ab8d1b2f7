"""Reactions of the training app: to the registry's signals, and to its own services' requests for background work
(the Celery tasks are enqueued here, so services need not import tasks)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.dispatch import receiver

from registry.models import Promotion
from registry.signals import promotion_recorded

from .models import TrainingRun
from .services import background, monitoring_snapshot
from .signals import (
    coins_rescore_requested,
    monitoring_refresh_requested,
    sweep_queued,
    sweep_trial_queued,
    sweep_trials_done,
    training_fold_queued,
    training_run_folds_done,
    training_run_queued,
)
from .tasks import (
    coins_rescore_task,
    monitoring_refresh_task,
    sweep_execute_task,
    sweep_finalise_task,
    sweep_trial_execute_task,
    training_fold_execute_task,
    training_run_execute_task,
    training_run_finalise_task,
)


@receiver(promotion_recorded, dispatch_uid="training_run_verdict_promoted")
def run_verdict_promoted(sender: Any, *, promotion: Promotion, action: str, **kwargs: Any) -> None:
    """A version promoted by a model owner or automatically: its training run's verdict says so. Inside the
    promotion's transaction, so the verdict never says promoted when the promotion rolled back."""
    run_id = promotion.to_version.training_run_id
    if run_id and action in (Promotion.Action.PROMOTE, Promotion.Action.AUTO):
        TrainingRun.objects.filter(pk=run_id).update(verdict=TrainingRun.Verdict.PROMOTED)


@receiver(training_run_queued, dispatch_uid="training_run_execute_enqueue")
def training_run_execute_enqueue(sender: Any, *, run_id: int, **kwargs: Any) -> None:
    """Hand a queued run to the `training` queue; the task does nothing if the run is no longer queued.

    Without a broker the task would run inside this call (Celery eager), holding the owner's request for the whole
    run: the run trains in a thread of this process instead (training.services.background)."""
    if background.training_in_background_enabled() and background.training_run_execute_in_background(run_id=run_id):
        return
    training_run_execute_task.delay(run_id)


@receiver(coins_rescore_requested, dispatch_uid="training_coins_rescore_enqueue")
def coins_rescore_enqueue(sender: Any, *, coin_runs: list[list[int]], requested_at: str, **kwargs: Any) -> None:
    """Hand one chunk of coins to a re-scoring task on the `training` queue."""
    coins_rescore_task.delay(coin_runs, requested_at)


@receiver(training_fold_queued, dispatch_uid="training_fold_execute_enqueue")
def training_fold_execute_enqueue(sender: Any, *, run_id: int, fold: int, **kwargs: Any) -> None:
    """One fold of a fold-parallel run to whichever training worker is free."""
    training_fold_execute_task.delay(run_id, fold)


@receiver(training_run_folds_done, dispatch_uid="training_run_finalise_enqueue")
def training_run_finalise_enqueue(sender: Any, *, run_id: int, **kwargs: Any) -> None:
    """Every fold is done: the finaliser (idempotent) combines them, registers, compares and decides."""
    training_run_finalise_task.delay(run_id)


@receiver(monitoring_refresh_requested, dispatch_uid="training_monitoring_refresh_enqueue")
def monitoring_refresh_enqueue(sender: Any, *, weeks: int, **kwargs: Any) -> None:
    """The monitoring figures of a window are old: a task on the `inference` queue (its threads answer within
    seconds; the `training` worker may be busy with a run for an hour). Without a broker the task would run inside
    the page's request: a thread of this process refreshes them instead."""
    if settings.CELERY_TASK_ALWAYS_EAGER and monitoring_snapshot.monitoring_refresh_in_background(weeks=weeks):
        return
    monitoring_refresh_task.apply_async(args=[[weeks]], queue="inference")


@receiver(sweep_queued, dispatch_uid="sweep_execute_enqueue")
def sweep_execute_enqueue(sender: Any, *, sweep_id: int, **kwargs: Any) -> None:
    """A queued sweep to a training worker, which creates its study and queues its trials."""
    sweep_execute_task.delay(sweep_id)


@receiver(sweep_trial_queued, dispatch_uid="sweep_trial_execute_enqueue")
def sweep_trial_execute_enqueue(sender: Any, *, sweep_id: int, index: int, **kwargs: Any) -> None:
    """One trial of a sweep to whichever training worker is free."""
    sweep_trial_execute_task.delay(sweep_id, index)


@receiver(sweep_trials_done, dispatch_uid="sweep_finalise_enqueue")
def sweep_finalise_enqueue(sender: Any, *, sweep_id: int, **kwargs: Any) -> None:
    """Every trial of a sweep settled: the finaliser (idempotent) ends it and queues the best configuration's run."""
    sweep_finalise_task.delay(sweep_id)
