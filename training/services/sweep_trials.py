"""The trials of a sweep (training.services.sweeps): one task each on the `training` queue, claimed as a lease,
heart-beating every epoch; the finaliser that ends the sweep with the best configuration; the reaper of trials whose
worker died.

Optuna is told every outcome: complete (the CV MAE), pruned (the pruner stopped it), failed (an error, or its worker
died: then the task asks a new trial, up to TRAINING_FOLD_ATTEMPTS times). Its storage is written outside Django's
transactions: on SQLite a second connection writing inside one would wait for the first's lock.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import optuna
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from optuna.trial import TrialState

from registry import gateway
from training.ml import tune
from training.ml.config import TrainConfig
from training.ml.stopping import TrainingCancelled

from ..errors import TrainingLeaseLost, error_text
from ..models import Sweep, SweepTrial, TrainingRun
from ..signals import sweep_trial_queued, sweep_trials_done
from .datasets import dataset_samples
from .folds import process_gone, worker_identity
from .lease import lease_seconds
from .runs import training_config_load, training_run_start
from .sweeps import OPEN, sweep_finish, sweep_study

logger = logging.getLogger(__name__)


def _attempts() -> int:
    return int(settings.TRAINING_FOLD_ATTEMPTS)


def _timed_out(sweep: Sweep, now) -> bool:
    return bool(
        sweep.timeout_seconds and sweep.started_at and now > sweep.started_at + timedelta(seconds=sweep.timeout_seconds)
    )


def _trial_claim(sweep_id: int, index: int) -> tuple[SweepTrial | None, SweepTrial | None]:
    """(the task's row, taken by this process or settled here; the row's previous attempt if its worker died).
    None when the sweep is not RUNNING, the task is settled, or another live process runs it."""
    now = timezone.now()
    stale = now - timedelta(seconds=lease_seconds())
    lost = None
    with transaction.atomic():
        slot = (
            SweepTrial.objects.select_for_update()
            .select_related("sweep")
            .filter(sweep_id=sweep_id, index=index, sweep__status=Sweep.Status.RUNNING)
            .first()
        )
        if slot is None or slot.status not in OPEN:
            return None, None
        if slot.status == SweepTrial.Status.RUNNING:
            if not (process_gone(slot.worker) or (slot.heartbeat_at and slot.heartbeat_at < stale)):
                return None, None
            logger.warning(
                "%s: its worker %s is gone; trial %s failed, asking a new one", slot, slot.worker, slot.number
            )
            lost = SweepTrial(**{f.attname: getattr(slot, f.attname) for f in SweepTrial._meta.concrete_fields})
            slot.lost_numbers = [*slot.lost_numbers, slot.number] if slot.number is not None else slot.lost_numbers
        sweep = slot.sweep
        if sweep.cancel_requested or _timed_out(sweep, now):
            slot.status, slot.finished_at = SweepTrial.Status.SKIPPED, now
            slot.error = "cancelled" if sweep.cancel_requested else "the sweep's timeout passed before it started"
        elif slot.attempts >= _attempts():
            slot.status, slot.finished_at = SweepTrial.Status.FAILED, now
            slot.error = f"its worker died {slot.attempts} times"
        else:
            slot.status, slot.worker, slot.attempts = SweepTrial.Status.RUNNING, worker_identity(), slot.attempts + 1
            slot.started_at = slot.heartbeat_at = now
            slot.epoch, slot.error, slot.number, slot.value, slot.mlflow_run_id = 0, "", None, None, ""
        slot.save()
    return slot, lost


def _trial_lost(sweep: Sweep, lost: SweepTrial) -> None:
    """The Optuna trial and the nested MLflow run of a dead worker's attempt end FAILED (best effort each)."""
    if lost.number is not None:
        try:
            sweep_study(sweep).tell(lost.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # already finished (told by a finaliser or an earlier claim)
            logger.info("trial %s of sweep %s was already finished", lost.number, sweep.pk)
    if lost.mlflow_run_id:
        try:
            gateway.tracking().sweeps.trial_run_end(lost.mlflow_run_id, state="failed", error="worker died")
        except Exception:  # noqa: BLE001 - MLflow down must not stop the sweep
            logger.warning("could not end MLflow run %s", lost.mlflow_run_id, exc_info=True)


class _TrialHooks:
    """cv_objective's callbacks: heartbeat + epoch on the row (lost lease -> stop), MLflow per-epoch metrics, the
    pruner's verdict, and the sweep's cancellation."""

    def __init__(self, slot: SweepTrial, trial: optuna.Trial, mlflow_run_id: str, max_epochs: int) -> None:
        self.slot, self.trial, self.run_id, self.max_epochs = slot, trial, mlflow_run_id, max_epochs
        self.last: float | None = None

    def _mine(self):
        return SweepTrial.objects.filter(pk=self.slot.pk, worker=self.slot.worker, status=SweepTrial.Status.RUNNING)

    def on_epoch(self, fold: int, epoch: int, metrics: dict) -> None:
        if not self._mine().update(epoch=F("epoch") + 1, heartbeat_at=timezone.now()):
            raise TrainingLeaseLost(f"{self.slot} was taken over (its lease expired)")
        step = (fold - 1) * self.max_epochs + epoch
        gateway.tracking().sweeps.trial_run_epoch(self.run_id, {**metrics, "fold": fold}, step=step)

    def report(self, step: int, value: float) -> None:
        self.last = value
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} (best fold MAE so far {value:.2f})")

    def should_stop(self) -> bool:
        if not self._mine().update(heartbeat_at=timezone.now()):
            raise TrainingLeaseLost(f"{self.slot} was taken over (its lease expired)")
        return Sweep.objects.filter(pk=self.slot.sweep_id, cancel_requested=True).exists()


def sweep_trial_execute(*, sweep_id: int, index: int, finalise: bool = True) -> str:
    """Run trial task ``index`` of a RUNNING sweep: ask Optuna for a trial, train it fold by fold (pruned when its
    validation MAE lags), tell the outcome; the task that settles the last trial queues the finaliser (unless
    ``finalise`` is False: the tune command finalises itself). Safe to call twice (a redelivered task): a task
    another live process runs, or that is settled, is left alone."""
    slot, lost = _trial_claim(sweep_id, index)
    if lost is not None:
        _trial_lost(slot.sweep, lost)
    if slot is None:
        return "skipped"
    if slot.status != SweepTrial.Status.RUNNING:
        if finalise:
            _settled(sweep_id)
        return slot.status
    sweep = Sweep.objects.select_related("dataset_version").get(pk=sweep_id)
    space, base = tune.SearchSpace.from_dict(sweep.space), TrainConfig.from_dict(sweep.base_config)
    study = sweep_study(sweep)
    trial = study.ask()
    state, value, error, run_id = SweepTrial.Status.FAILED, None, "", ""
    tracking = gateway.tracking()
    try:
        params = space.suggest(trial, base)
        SweepTrial.objects.filter(pk=slot.pk, worker=slot.worker).update(number=trial.number, params=params)
        config = tune.trial_config(base, space, params)
        run_id = tracking.sweeps.trial_run_start(
            parent_run_id=sweep.mlflow_run_id,
            number=trial.number,
            params=params,
            tags={"coinsite.sweep": sweep_id, "coinsite.task": index, "coinsite.attempt": slot.attempts},
        )
        SweepTrial.objects.filter(pk=slot.pk, worker=slot.worker).update(mlflow_run_id=run_id)
        hooks = _TrialHooks(slot, trial, run_id, space.max_epochs(base))
        result = tune.cv_objective(
            config,
            dataset_samples(dataset=sweep.dataset_version),
            max_epochs=space.max_epochs(base),
            report=hooks.report,
            on_epoch=hooks.on_epoch,
            should_stop=hooks.should_stop,
        )
        state, value = SweepTrial.Status.COMPLETE, result.value
        study.tell(trial, result.value)
    except optuna.TrialPruned:
        state, value = SweepTrial.Status.PRUNED, hooks.last
        study.tell(trial, state=TrialState.PRUNED)
    except TrainingLeaseLost as lease:
        logger.warning("%s", lease)
        return "lost"
    except TrainingCancelled:
        state, error = SweepTrial.Status.SKIPPED, "cancelled"
        study.tell(trial, state=TrialState.FAIL)
    except Exception as failure:  # noqa: BLE001 - a failed trial is recorded; the sweep goes on
        logger.exception("trial %s of sweep %s failed", trial.number, sweep_id)
        state, error = SweepTrial.Status.FAILED, error_text(failure)
        study.tell(trial, state=TrialState.FAIL)
    if run_id:
        tracking.sweeps.trial_run_end(
            run_id,
            state={"skipped": "failed"}.get(state, state),
            value=value if state == "complete" else None,
            error=error,
        )
    SweepTrial.objects.filter(pk=slot.pk, worker=slot.worker, status=SweepTrial.Status.RUNNING).update(
        status=state, value=value, error=error, finished_at=timezone.now()
    )
    logger.info("sweep %s trial %s (task %s): %s %s", sweep_id, trial.number, index, state, value)
    if finalise:
        _settled(sweep_id)
    return state


def _settled(sweep_id: int) -> None:
    """Queue the finaliser (after commit) once no trial task of the sweep is queued or running."""
    with transaction.atomic():
        if (
            Sweep.objects.filter(pk=sweep_id, status=Sweep.Status.RUNNING, finalising_at__isnull=True).exists()
            and not SweepTrial.objects.filter(sweep_id=sweep_id, status__in=OPEN).exists()
        ):
            transaction.on_commit(lambda: sweep_trials_done.send(sender=Sweep, sweep_id=sweep_id))


def sweep_finalise(*, sweep_id: int, train_best: bool = True, enqueue: bool = True) -> Sweep:
    """End the sweep once every trial task settled (claimed once): the plots and the trials table on the MLflow
    parent, the best trial on the row, and the best configuration queued as a normal training run (``enqueue=False``:
    the caller executes it), which registers a version and compares it with Production; promoted only with
    AUTO_PROMOTE, as any run. The run trains exactly the configuration the trial measured (the space's fixed values
    included), on the whole frozen dataset of today."""
    claimed = (
        Sweep.objects.filter(pk=sweep_id, status=Sweep.Status.RUNNING, finalising_at__isnull=True)
        .exclude(trials__status__in=OPEN)
        .update(finalising_at=timezone.now())
    )
    sweep = Sweep.objects.get(pk=sweep_id)
    if not claimed:
        return sweep
    tracking = gateway.tracking()
    try:
        study = sweep_study(sweep)
        for orphan in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # asked, then the worker died
            study.tell(orphan.number, state=TrialState.FAIL)
        table = tune.trials_table(study)
        complete = [row for row in table if row["state"] == "complete"]
        best = min(complete, key=lambda row: row["value"]) if complete else None
        default = next((row for row in complete if row["user_attrs"].get("default")), None)
        counts = {state: sum(1 for row in table if row["state"] == state) for state in ("complete", "pruned", "fail")}
        metrics: dict[str, Any] = {f"trials_{k}": v for k, v in counts.items()}
        if best is not None:
            metrics["best_cv_mae"] = best["value"]
        if default is not None:
            metrics["default_cv_mae"] = default["value"]
        tracking.sweeps.sweep_run_end(
            sweep.mlflow_run_id,
            status="KILLED" if sweep.cancel_requested else "FINISHED",
            metrics=metrics,
            artifacts={**tune.study_figures(study), "trials.json": table},
            tags={
                "coinsite.best_trial": best["number"] if best else "",
                "coinsite.best_params": best["params"] if best else "",
            },
        )
        fields: dict[str, Any] = {"default_value": default["value"] if default else None}
        if best is not None:
            fields.update(best_value=best["value"], best_trial=best["number"], best_params=best["params"])
        if sweep.cancel_requested:
            return sweep_finish(sweep_id, Sweep.Status.CANCELLED, **fields)
        if best is None:
            return sweep_finish(sweep_id, Sweep.Status.FAILED, error="no trial completed", **fields)
        if train_best and sweep.train_best:
            space, base = tune.SearchSpace.from_dict(sweep.space), TrainConfig.from_dict(sweep.base_config)
            config = tune.trial_config(base, space, best["params"])
            run = training_run_start(
                overrides=tune.config_overrides(config, training_config_load()),
                requested_by=sweep.requested_by,
                origin=TrainingRun.Origin.SWEEP,
                enqueue=enqueue,
            )
            fields["training_run"] = run
        return sweep_finish(sweep_id, Sweep.Status.SUCCEEDED, **fields)
    except Exception as failure:  # noqa: BLE001 - the sweep ends FAILED with the reason; Production untouched
        logger.exception("sweep %s could not be finalised", sweep_id)
        try:
            tracking.sweeps.sweep_run_end(sweep.mlflow_run_id, status="FAILED", tags={"error": error_text(failure)})
        except Exception:  # noqa: BLE001
            logger.warning("could not end MLflow run %s", sweep.mlflow_run_id, exc_info=True)
        return sweep_finish(sweep_id, Sweep.Status.FAILED, error=error_text(failure))


def sweep_trials_requeue_stale(*, now=None) -> list[tuple[int, int]]:
    """Trial tasks of RUNNING sweeps whose worker stopped heart-beating for longer than the lease (a lost host): their
    Optuna trial ends FAILED and the task is queued again (a new trial); returns (sweep id, task index) of each.
    A sweep whose trials all settled but that nobody finalised gets its finaliser queued again."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=lease_seconds())
    requeued = []
    stale = SweepTrial.objects.select_related("sweep").filter(
        sweep__status=Sweep.Status.RUNNING, status=SweepTrial.Status.RUNNING, heartbeat_at__lt=cutoff
    )
    for slot in stale:
        lost = list(slot.lost_numbers) + ([slot.number] if slot.number is not None else [])
        if SweepTrial.objects.filter(pk=slot.pk, worker=slot.worker, status=SweepTrial.Status.RUNNING).update(
            status=SweepTrial.Status.QUEUED, lost_numbers=lost, error="worker died (no heartbeat)"
        ):
            _trial_lost(slot.sweep, slot)
            transaction.on_commit(
                lambda slot=slot: sweep_trial_queued.send(sender=Sweep, sweep_id=slot.sweep_id, index=slot.index)
            )
            requeued.append((slot.sweep_id, slot.index))
            logger.warning("%s: no heartbeat since %s, queued again", slot, slot.heartbeat_at)
    forgotten = (
        Sweep.objects.filter(status=Sweep.Status.RUNNING, finalising_at__isnull=True, trials__isnull=False)
        .exclude(trials__status__in=OPEN)
        .distinct()
        .values_list("pk", flat=True)
    )
    for sweep_id in forgotten:
        transaction.on_commit(lambda sweep_id=sweep_id: sweep_trials_done.send(sender=Sweep, sweep_id=sweep_id))
    return requeued
