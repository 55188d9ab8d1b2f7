"""The training lock: at most one RUNNING run (a partial unique constraint), held as a lease with a heartbeat.

A worker that dies cannot release the lock; its lease expires and whoever comes next reaps it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from registry import gateway
from training.ml.stopping import TrainingCancelled

from ..errors import ERROR_MAX_CHARS, FineTuneRegressed, TrainingBusy, TrainingLeaseLost, error_text
from ..models import TrainingRun
from ..signals import training_run_queued

logger = logging.getLogger(__name__)


def lease_seconds() -> int:
    return int(getattr(settings, "TRAINING_LEASE_SECONDS", 900))


def training_run_reap_stale(*, now=None) -> list[int]:
    """Mark RUNNING runs whose worker stopped heart-beating for longer than the lease as FAILED ("worker died").

    A worker killed mid-training (OOM, SIGKILL, lost host) cannot clean up after itself; its lease simply expires, and
    whoever comes next (the beat sweeper, the next run, the scheduler) reaps it so the lock is free again. Production
    was never touched by the dead run: promotion only happens after a successful comparison.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=lease_seconds())
    stale = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    reaped = []
    for run in stale:
        beat = (run.heartbeat_at or run.started_at).isoformat(timespec="seconds")
        updated = TrainingRun.objects.filter(
            pk=run.pk, status=TrainingRun.Status.RUNNING, heartbeat_at=run.heartbeat_at
        ).update(
            status=TrainingRun.Status.FAILED,
            error=f"worker died: no heartbeat since {beat} (lease {lease_seconds()} s)",
            finished_at=now,
        )
        if updated:
            reaped.append(run.pk)
            logger.warning("training run %s reaped: worker died (last heartbeat %s)", run.pk, beat)
            mlflow_end_run_quietly(run.mlflow_run_id, status="FAILED")
    return reaped


def lease_acquire(run: TrainingRun) -> bool:
    """QUEUED -> RUNNING, which is the lock: the database refuses a second RUNNING row. False when the run is no
    longer queued (another worker took it: acks_late redelivery). Raises TrainingBusy when another run holds it."""
    training_run_reap_stale()
    now = timezone.now()
    try:
        with transaction.atomic():
            updated = TrainingRun.objects.filter(
                pk=run.pk, status=TrainingRun.Status.QUEUED, cancel_requested=False
            ).update(status=TrainingRun.Status.RUNNING, started_at=now, heartbeat_at=now, error="")
    except IntegrityError:
        raise TrainingBusy(TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).first()) from None
    return updated == 1


def lease_renew(run_id: int, *, progress: dict | None = None) -> bool:
    """Refresh the heartbeat (and progress); returns whether a cancellation was requested.

    Raises TrainingLeaseLost when the run is no longer RUNNING (it was reaped while this worker stalled): the worker
    must stop and write nothing more, another run may already hold the lock.
    """
    fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if progress is not None:
        fields["progress"] = progress
    if not TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(**fields):
        raise TrainingLeaseLost(f"training run #{run_id} lost its lease (it was reaped or finished elsewhere)")
    return TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def run_finish(run_id: int, *, status: str, **fields) -> TrainingRun:
    """Leave RUNNING (this releases the lock) with the final status; only from RUNNING, so a reaped run stays reaped."""
    TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(
        status=status, finished_at=timezone.now(), **fields
    )
    return TrainingRun.objects.get(pk=run_id)


def mlflow_end_run_quietly(run_id: str, *, status: str) -> None:
    """End a dead worker's MLflow run (best effort: the tracking server may be down too)."""
    if not run_id:
        return
    try:
        gateway.run_end(run_id, status=status, error="worker died (no heartbeat)")
    except Exception:  # noqa: BLE001 - reaping must not fail because MLflow is unreachable
        logger.warning("could not mark MLflow run %s as %s", run_id, status, exc_info=True)


def run_guarded(run_id: int, work: Callable[[], TrainingRun | None]) -> TrainingRun:
    """Do the work of a RUNNING run that this worker holds, and leave it in its final state whatever happens.

    `work()` returns the finished run, or None when it handed the run on (fold-parallel: the folds are queued and the
    run stays RUNNING). Any failure ends the run FAILED with a short reason, leaves Production as it was and releases
    the lock; the MLflow run ends FAILED and a version it registered is deleted again (TrainingTracker). A cancelled
    run ends CANCELLED the same way; a fine-tune that regressed ends SUCCEEDED with the verdict REJECTED.
    """
    started = time.monotonic()
    handed_on = False
    try:
        finished = work()
        if finished is None:
            handed_on = True
            return TrainingRun.objects.get(pk=run_id)
    except TrainingLeaseLost as error:
        logger.warning("%s", error)
        return TrainingRun.objects.get(pk=run_id)
    except TrainingCancelled:
        finished = run_finish(run_id, status=TrainingRun.Status.CANCELLED, error="cancelled by a model owner")
    except FineTuneRegressed as error:
        finished = run_finish(
            run_id,
            status=TrainingRun.Status.SUCCEEDED,
            verdict=TrainingRun.Verdict.REJECTED,
            error=str(error)[:ERROR_MAX_CHARS],
        )
    except Exception as error:  # noqa: BLE001 - any failure: FAILED with the reason, Production untouched
        logger.exception("training run %s failed", run_id)
        finished = run_finish(run_id, status=TrainingRun.Status.FAILED, error=error_text(error))
    finally:
        # Whatever happened (even KeyboardInterrupt), this worker's run is not left RUNNING: the lock is released.
        if not handed_on:
            TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(
                status=TrainingRun.Status.FAILED, finished_at=timezone.now(), error="stopped unexpectedly"
            )
    logger.info(
        "training run %s: %s %s in %.0f s", run_id, finished.status, finished.verdict, time.monotonic() - started
    )
    next_queued_run_kick()
    return finished


def next_queued_run_kick() -> None:
    """The lock is free again: hand the oldest queued run (one that found the lock taken) to a worker. With a broker
    its own retry would get there too; in-process (eager) nothing else would ever start it."""
    waiting = (
        TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED, cancel_requested=False)
        .order_by("created_at", "id")
        .values_list("id", flat=True)
        .first()
    )
    if waiting is not None:
        transaction.on_commit(lambda: training_run_queued.send(sender=TrainingRun, run_id=waiting))
