"""Fold-parallel training: a run's K folds train as K tasks on the `training` queue, on as many workers as there are
(min(workers, K)), and whichever worker finishes the last fold finalises the run.

Completion is recorded in the database (TrainingFold rows, with each fold's output), not in a Celery chord: chord
callbacks are known to be lost (celery #4207, #5229, #8211). The finaliser is idempotent: it claims the run once
(TrainingRun.finalising_at), so a second "last fold" or a redelivered task does nothing.

A fold whose worker dies is trained again:
- its process killed (SIGKILL, OOM): the task was acknowledged late and is given back to the broker
  (task_reject_on_worker_lost), and the next claim sees that the process recorded on the fold is gone;
- its host lost: its heartbeat goes stale, and the reaper (beat) queues it again, up to TRAINING_FOLD_ATTEMPTS times.
A run whose fold fails, or that is cancelled, ends without registering anything: Production never changes before
the finaliser's comparison, exactly as for a run trained in one process.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from registry import gateway
from registry.gateway import PRODUCTION_ALIAS
from training.ml.config import TrainConfig
from training.ml.stopping import TrainingCancelled

from ..errors import TrainingLeaseLost, error_text
from ..models import TrainingFold, TrainingRun
from ..signals import training_fold_queued, training_run_folds_done
from .datasets import dataset_negative_pairs, dataset_samples
from .lease import lease_renew, lease_seconds, next_queued_run_kick, run_finish, run_guarded
from .recording import run_record_and_decide

logger = logging.getLogger(__name__)

# A run is ready to finalise when none of its folds is in one of these.
NOT_DONE = [status for status in TrainingFold.Status.values if status != TrainingFold.Status.DONE]


def training_fold_parallel_enabled() -> bool:
    """Folds go to the workers only with a broker (there are workers to share them) and TRAINING_FOLD_PARALLEL on."""
    return not settings.CELERY_TASK_ALWAYS_EAGER and bool(settings.TRAINING_FOLD_PARALLEL)


def _fold_attempts() -> int:
    return int(settings.TRAINING_FOLD_ATTEMPTS)


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_gone(worker: str) -> bool:
    """Whether the process recorded as `host:pid` is known to be dead: only answerable on its own host."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def training_folds_dispatch(*, run_id: int, config: TrainConfig) -> None:
    """Create the run's K fold rows and queue one task per fold (after commit)."""
    with transaction.atomic():
        for index in range(config.folds):
            TrainingFold.objects.get_or_create(run_id=run_id, index=index)
        lease_renew(run_id, progress=_fold_progress(run_id, config))
        for index in range(config.folds):
            transaction.on_commit(
                lambda index=index: training_fold_queued.send(sender=TrainingRun, run_id=run_id, fold=index)
            )
    logger.info("training run %s: %s folds queued for the training workers", run_id, config.folds)


def _fold_progress(run_id: int, config: TrainConfig, **extra: Any) -> dict[str, Any]:
    """The run's progress while its folds train apart: folds done, and epochs trained over all folds."""
    totals = TrainingFold.objects.filter(run_id=run_id).aggregate(
        epochs_done=Sum("epoch"), folds_done=Count("pk", filter=Q(status=TrainingFold.Status.DONE))
    )
    return {
        "stage": "training",
        "folds": config.folds,
        "epochs": config.epochs,
        "folds_done": int(totals["folds_done"] or 0),
        "epochs_done": int(totals["epochs_done"] or 0),
        **extra,
    }


def _fold_claim(run_id: int, index: int) -> TrainingFold | None:
    """Take fold `index` for this process: a queued fold, or a running one whose process died (its task was given
    back by the broker) or whose heartbeat is older than the lease. None when another live process has it, it is
    done, or its run is not RUNNING any more."""
    now = timezone.now()
    stale = now - timedelta(seconds=lease_seconds())
    with transaction.atomic():
        fold = (
            TrainingFold.objects.select_for_update()
            .filter(run_id=run_id, index=index, run__status=TrainingRun.Status.RUNNING)
            .first()
        )
        if fold is None or fold.status in (TrainingFold.Status.DONE, TrainingFold.Status.FAILED):
            return None
        if fold.status == TrainingFold.Status.RUNNING:
            if not (process_gone(fold.worker) or (fold.heartbeat_at and fold.heartbeat_at < stale)):
                return None
            logger.warning(
                "fold %s of training run %s: its worker %s is gone, training it again", index, run_id, fold.worker
            )
        if fold.attempts >= _fold_attempts():
            fold.status, fold.error, fold.finished_at = TrainingFold.Status.FAILED, "too many attempts", now
            fold.save(update_fields=["status", "error", "finished_at"])
            return fold
        fold.status, fold.worker, fold.attempts = TrainingFold.Status.RUNNING, worker_identity(), fold.attempts + 1
        fold.started_at = fold.heartbeat_at = now
        fold.epoch, fold.error = 0, ""
        fold.save(update_fields=["status", "worker", "attempts", "started_at", "heartbeat_at", "epoch", "error"])
        return fold


class _FoldHooks:
    """fit_fold's callbacks: the fold's epoch and heartbeat, the run's heartbeat and progress, and a stop when the
    run was cancelled or ended (another fold failed)."""

    def __init__(self, fold: TrainingFold, config: TrainConfig) -> None:
        self.fold, self.config = fold, config

    def on_epoch(self, fold: int, epoch: int, metrics: dict) -> None:
        TrainingFold.objects.filter(pk=self.fold.pk, worker=self.fold.worker).update(
            epoch=int(epoch), heartbeat_at=timezone.now()
        )
        lease_renew(self.fold.run_id, progress=_fold_progress(self.fold.run_id, self.config))

    def should_stop(self) -> bool:
        mine = TrainingFold.objects.filter(pk=self.fold.pk, worker=self.fold.worker, status=TrainingFold.Status.RUNNING)
        if not mine.update(heartbeat_at=timezone.now()):
            raise TrainingLeaseLost(f"{self.fold} was taken over by another worker")
        return lease_renew(self.fold.run_id)


def training_fold_execute(*, run_id: int, index: int) -> str:
    """Train fold `index` of a RUNNING fold-parallel run, store its output, and finalise the run when it was the last
    fold. Safe to call twice (a redelivered task): a fold that another live process trains, or that is done, is left
    alone. Returns what happened, for the task's result."""
    from training.ml.data import CoinPairDataset  # lazy: torch loads only in the training worker
    from training.ml.folds import FoldContext, fit_fold, fold_plan  # lazy: as above
    from training.ml.train import select_device  # lazy: as above

    fold = _fold_claim(run_id, index)
    if fold is None:
        return "skipped"
    if fold.status == TrainingFold.Status.FAILED:
        _run_fail(run_id, f"fold {index + 1} failed {fold.attempts} times; its worker kept dying")
        return "failed"
    run = TrainingRun.objects.select_related("dataset_version").get(pk=run_id)
    config = TrainConfig.from_dict(run.config)
    hooks = _FoldHooks(fold, config)
    try:
        samples = dataset_samples(dataset=run.dataset_version)
        dataset = CoinPairDataset(samples, config, train=True, limits=settings.COINSITE_PHOTO_LIMITS).preload()
        negatives = dataset_negative_pairs(dataset=run.dataset_version)
        context = FoldContext.build(config, dataset, fold_plan(config, len(samples)), negatives)
        output = fit_fold(
            context, index, device=select_device(), on_epoch=hooks.on_epoch, should_stop=hooks.should_stop
        )
    except TrainingLeaseLost as error:
        logger.warning("%s", error)
        return "lost"
    except TrainingCancelled:
        TrainingFold.objects.filter(pk=fold.pk, worker=fold.worker).update(status=TrainingFold.Status.CANCELLED)
        if TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists():
            run_finish(run_id, status=TrainingRun.Status.CANCELLED, error="cancelled by a model owner")
            next_queued_run_kick()
        return "cancelled"
    except Exception as error:  # noqa: BLE001 - a fold that fails fails its run; Production untouched
        logger.exception("fold %s of training run %s failed", index + 1, run_id)
        TrainingFold.objects.filter(pk=fold.pk, worker=fold.worker).update(
            status=TrainingFold.Status.FAILED, error=error_text(error), finished_at=timezone.now()
        )
        _run_fail(run_id, f"fold {index + 1}: {error_text(error)}")
        return "failed"
    with transaction.atomic():
        stored = TrainingFold.objects.filter(pk=fold.pk, worker=fold.worker, status=TrainingFold.Status.RUNNING).update(
            status=TrainingFold.Status.DONE, output=output.to_bytes(), finished_at=timezone.now(), error=""
        )
        lease_renew(run_id, progress=_fold_progress(run_id, config))
        if stored and not TrainingFold.objects.filter(run_id=run_id).exclude(status=TrainingFold.Status.DONE).exists():
            transaction.on_commit(lambda: training_run_folds_done.send(sender=TrainingRun, run_id=run_id))
    logger.info("fold %s of training run %s done (attempt %s)", index + 1, run_id, fold.attempts)
    return "done" if stored else "lost"


def _run_fail(run_id: int, reason: str) -> None:
    """End the run FAILED (once: only from RUNNING), which frees the training lock; the other folds stop at their
    next epoch check."""
    if TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).exists():
        run_finish(run_id, status=TrainingRun.Status.FAILED, error=reason)
        next_queued_run_kick()


def training_run_finalise(*, run_id: int) -> TrainingRun:
    """Combine the K fold outputs into the run's result, then record and decide as a one-process run does.

    Idempotent: only the first caller that finds every fold done claims the run; later calls return it as it is."""
    now = timezone.now()
    claimed = (
        TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING, finalising_at__isnull=True)
        .exclude(folds__status__in=NOT_DONE)
        .update(finalising_at=now, heartbeat_at=now)
    )
    if not claimed or not TrainingFold.objects.filter(run_id=run_id).exists():
        return TrainingRun.objects.get(pk=run_id)
    finished = run_guarded(run_id, lambda: _finalise(run_id))
    TrainingFold.objects.filter(run_id=run_id).update(output=None)  # the versions hold the weights now
    return finished


def _finalise(run_id: int) -> TrainingRun:
    from training.ml.data import CoinPairDataset  # lazy: torch loads only in the training worker
    from training.ml.folds import FoldContext, FoldOutput, fold_plan  # lazy: as above
    from training.ml.kfold import fit_combine, quantization_sample  # lazy: as above
    from training.ml.soup import make_soup, soup_wanted  # lazy: as above
    from training.ml.train import select_device  # lazy: as above

    run = TrainingRun.objects.select_related("dataset_version", "evaluation_dataset", "requested_by").get(pk=run_id)
    config = TrainConfig.from_dict(run.config)
    progress = _fold_progress(run_id, config, stage="combining the folds")

    def beat(**fields: Any) -> None:
        progress.update(fields)
        if lease_renew(run_id, progress=dict(progress)):
            raise TrainingCancelled()

    beat()
    samples = dataset_samples(dataset=run.dataset_version)
    outputs = [
        FoldOutput.from_bytes(bytes(data)) for data in run.folds.order_by("index").values_list("output", flat=True)
    ]
    plan = fold_plan(config, len(samples))
    eval_view = CoinPairDataset(samples, config, train=False, limits=settings.COINSITE_PHOTO_LIMITS)
    soup = None
    negatives = dataset_negative_pairs(dataset=run.dataset_version)  # each fold read them after its generated ones
    if soup_wanted(config, plan):  # the context's loaders (the holdout, non-coin photos) only for a soup
        beat(stage="averaging the fold models")
        soup = make_soup(FoldContext.build(config, eval_view, plan, negatives), outputs, device=select_device())
    result = fit_combine(
        config,
        plan,
        np.array([s.year for s in samples], dtype=np.float64),
        outputs,
        quantization_photos=quantization_sample(eval_view, len(samples), config),
        soup=soup,
        seconds=sum(float(output.metrics.get("seconds", 0.0)) for output in outputs),
        curator_negatives=len(negatives) if config.head == "reader" else 0,
    )
    production = gateway.tracking().get_alias_version(settings.MLFLOW_MODEL_NAME, PRODUCTION_ALIAS)

    def replay(tracker):
        for row in result.history:  # each fold's learning curve in its nested run, as a one-process run logs it
            epoch_metrics = {k: v for k, v in row.items() if k not in ("fold", "epoch")}
            tracker.on_epoch(int(row["fold"]), int(row["epoch"]), epoch_metrics)
        return result

    return run_record_and_decide(
        run=run,
        config=config,
        training_set=run.dataset_version,
        evaluation_set=run.evaluation_dataset,
        train_samples=samples,
        production=production,
        beat=beat,
        progress=progress,
        auto_promote=settings.AUTO_PROMOTE,
        fit=replay,
    )


def training_folds_requeue_stale(*, now=None) -> list[tuple[int, int]]:
    """Queue again the folds of RUNNING runs whose worker stopped heart-beating for longer than the lease (a lost
    host: nobody gave its task back); returns (run id, fold index) of each. Called by the reaper before it judges a
    run dead, so a fold-parallel run survives a lost worker while attempts remain."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=lease_seconds())
    stale = TrainingFold.objects.filter(
        run__status=TrainingRun.Status.RUNNING, status=TrainingFold.Status.RUNNING, heartbeat_at__lt=cutoff
    )
    requeued = []
    for fold in stale:
        if TrainingFold.objects.filter(pk=fold.pk, worker=fold.worker, status=TrainingFold.Status.RUNNING).update(
            status=TrainingFold.Status.QUEUED
        ):
            TrainingRun.objects.filter(pk=fold.run_id, status=TrainingRun.Status.RUNNING).update(heartbeat_at=now)
            transaction.on_commit(
                lambda fold=fold: training_fold_queued.send(sender=TrainingRun, run_id=fold.run_id, fold=fold.index)
            )
            requeued.append((fold.run_id, fold.index))
            logger.warning("%s: no heartbeat since %s, queued again", fold, fold.heartbeat_at)
    _finalisers_ask_again(cutoff)
    return requeued


def _finalisers_ask_again(cutoff) -> None:
    """A run whose folds are all done but that nobody finalised (the finaliser's message was lost with its broker or
    its worker before the claim) gets its finaliser queued again once silent for the lease; the claim keeps it
    idempotent."""
    forgotten = (
        TrainingRun.objects.filter(
            status=TrainingRun.Status.RUNNING, finalising_at__isnull=True, heartbeat_at__lt=cutoff
        )
        .filter(folds__isnull=False)
        .exclude(folds__status__in=NOT_DONE)
        .distinct()
    )
    for run_id in forgotten.values_list("pk", flat=True):
        logger.warning("training run %s: every fold done and not finalised, finaliser queued again", run_id)
        TrainingRun.objects.filter(pk=run_id).update(heartbeat_at=timezone.now())
        transaction.on_commit(lambda run_id=run_id: training_run_folds_done.send(sender=TrainingRun, run_id=run_id))
