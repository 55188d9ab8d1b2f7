"""Celery tasks of the `training` queue: thin, take ids, re-read state, call services.

Every task is safe to run twice (acks_late redelivery after a worker died): the services check the state first.
"""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task

from .errors import TrainingBusy
from .services import datasets, folds, lease, monitoring_snapshot, rescore, runs, schedule, sweep_trials, sweeps

logger = logging.getLogger(__name__)

# While another run holds the training lock, a queued run waits its turn: retried every minute, for up to a day.
BUSY_RETRY_SECONDS = 60
BUSY_MAX_RETRIES = 24 * 60


@shared_task(name="training.tasks.dataset_freeze_task")
def dataset_freeze_task(kind: str = "training") -> int:
    """Freeze the current labels (used by the scheduler and to check a worker end to end)."""
    return datasets.dataset_freeze(kind=kind).id


@shared_task(name="training.tasks.training_run_execute_task", bind=True, acks_late=True)
def training_run_execute_task(self, run_id: int) -> str:
    """Run one queued training run (no-op when it is not queued any more). Waits for the lock by retrying."""
    try:
        run = runs.training_run_execute(run_id=run_id)
    except TrainingBusy as busy:
        if self.request.is_eager:  # in-process (embedded default): nobody would retry; the run stays queued
            logger.warning("training run %s stays queued: %s", run_id, busy)
            return "queued"
        raise self.retry(countdown=BUSY_RETRY_SECONDS, max_retries=BUSY_MAX_RETRIES) from busy
    return run.status


@shared_task(name="training.tasks.training_fold_execute_task", acks_late=True, reject_on_worker_lost=True)
def training_fold_execute_task(run_id: int, fold: int) -> str:
    """Train one fold of a fold-parallel run (given back to the broker if this worker process dies mid-fold)."""
    return folds.training_fold_execute(run_id=run_id, index=fold)


@shared_task(name="training.tasks.training_run_finalise_task", acks_late=True)
def training_run_finalise_task(run_id: int) -> str:
    """Combine a fold-parallel run's folds, register, compare, decide (no-op once claimed)."""
    return folds.training_run_finalise(run_id=run_id).status


@shared_task(name="training.tasks.sweep_execute_task", acks_late=True)
def sweep_execute_task(sweep_id: int) -> str:
    """Start a queued sweep: its study, its MLflow parent run, one task per trial (no-op once started)."""
    return sweeps.sweep_execute(sweep_id=sweep_id).status


@shared_task(name="training.tasks.sweep_trial_execute_task", acks_late=True, reject_on_worker_lost=True)
def sweep_trial_execute_task(sweep_id: int, index: int) -> str:
    """Run one trial of a sweep (given back to the broker if this worker process dies mid-trial: a new trial)."""
    return sweep_trials.sweep_trial_execute(sweep_id=sweep_id, index=index)


@shared_task(name="training.tasks.sweep_finalise_task", acks_late=True)
def sweep_finalise_task(sweep_id: int) -> str:
    """End a sweep whose trials all settled: plots, best trial, the best configuration as a training run."""
    return sweep_trials.sweep_finalise(sweep_id=sweep_id).status


@shared_task(name="training.tasks.training_run_reap_stale_task")
def training_run_reap_stale_task() -> list[int]:
    """Queue again the folds and sweep trials whose worker was lost, then mark runs whose worker died (stale heartbeat) as failed,
    releasing the training lock."""
    folds.training_folds_requeue_stale()
    sweep_trials.sweep_trials_requeue_stale()
    return lease.training_run_reap_stale()


@shared_task(name="training.tasks.retrain_if_enough_labels_task")
def retrain_if_enough_labels_task() -> int | None:
    """The scheduled retraining (django-celery-beat): starts a run only with enough new verified labels."""
    run = schedule.retrain_if_enough_labels()
    return run.id if run is not None else None


@shared_task(name="training.tasks.coins_rescore_task", acks_late=True)
def coins_rescore_task(coin_runs: list[list[int]], requested_at: str | None = None) -> int:
    """Re-predict one chunk of coins ([low, high] runs of ids) with the current Production version; a coin it
    predicted since `requested_at` already is skipped, so a redelivered chunk predicts nothing twice."""
    since = datetime.fromisoformat(requested_at) if requested_at else None
    return rescore.coins_rescore_now(coin_ids=rescore.id_runs_expand(coin_runs), requested_at=since)


@shared_task(name="training.tasks.monitoring_refresh_task")
def monitoring_refresh_task(weeks: list[int] | None = None) -> list[int]:
    """Compute the monitoring page's figures again (beat every 5 minutes: the default window and every window a page
    asked for; a page: its own window). Idempotent: a second run stores the same figures."""
    return monitoring_snapshot.monitoring_snapshots_refresh(weeks=weeks)
