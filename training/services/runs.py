"""Training runs: queue one with a validated config, run it (lock, freeze, K-fold train, register, compare, decide),
cancel it. A failed or cancelled run never changes what Production serves."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from registry import gateway
from registry.gateway import PRODUCTION_ALIAS
from registry.roles import can_train
from registry.selectors import production_version_registered
from training.ml.config import TrainConfig, load_config
from training.ml.stopping import TrainingCancelled

from ..errors import FineTuneRegressed
from ..models import DatasetVersion, TrainingRun
from ..signals import training_run_queued
from .datasets import dataset_freeze, dataset_negative_pairs, dataset_samples
from .folds import training_fold_parallel_enabled, training_folds_dispatch
from .lease import lease_acquire, lease_renew, run_guarded
from .recording import run_record_and_decide

logger = logging.getLogger(__name__)


def training_config_load(*, overrides: Sequence[str] = (), path: str | None = None) -> TrainConfig:
    """Load and validate a training config (YAML + key=value overrides); a bad key or value is a ValidationError
    naming it, so the admin form and the commands can show it before anything is queued."""
    try:
        return load_config(path or settings.TRAINING_CONFIG_PATH, overrides=list(overrides))
    except (ValueError, TypeError, KeyError) as error:
        raise ValidationError({"config": str(error)}) from error
    except FileNotFoundError as error:
        raise ValidationError({"config": f"config file not found: {error.filename or path}"}) from error


def training_run_start(
    *,
    requested_by=None,
    overrides: Sequence[str] = (),
    fine_tune: bool = False,
    config_path: str | None = None,
    enqueue: bool = True,
    origin: str | None = None,
) -> TrainingRun:
    """Queue a training run with a validated config; the worker picks it up after commit (queue `training`).

    `requested_by=None` is the system (scheduler, shell commands); a person needs the model-owner permission.
    `origin` (TrainingRun.Origin) records what started it: by default a model owner when `requested_by` names one,
    else a command; the scheduler and the first-run set-up say so.
    `enqueue=False` is for the shell commands, which execute the run themselves in-process.
    """
    if requested_by is not None and not can_train(requested_by):
        raise PermissionDenied("Only model owners can start training.")
    config = training_config_load(overrides=overrides, path=config_path)
    if fine_tune and production_version_registered() is None:
        raise ValidationError(
            {"fine_tune": "Fine-tuning starts from Production's weights, and no version is in production yet."}
        )
    with transaction.atomic():
        run = TrainingRun(
            config=config.to_dict(),
            fine_tune=fine_tune,
            requested_by=requested_by if getattr(requested_by, "pk", None) else None,
            origin=origin or (TrainingRun.Origin.OWNER if requested_by is not None else TrainingRun.Origin.COMMAND),
        )
        run.full_clean()
        run.save()
        if enqueue:
            run_id = run.id
            transaction.on_commit(lambda: training_run_queued.send(sender=TrainingRun, run_id=run_id))
    return run


def training_run_cancel(*, run: TrainingRun, actor) -> TrainingRun:
    """Ask a run to stop. A queued run is cancelled at once; a running one stops at its next check (before and
    after every epoch) and ends CANCELLED without registering anything."""
    if not can_train(actor):
        raise PermissionDenied("Only model owners can cancel training.")
    with transaction.atomic():
        TrainingRun.objects.filter(
            pk=run.pk, status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]
        ).update(cancel_requested=True)
        TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.CANCELLED, error="cancelled before it started", finished_at=timezone.now()
        )
    run.refresh_from_db()
    return run


class _RunHooks:
    """The callbacks fit() calls: progress + heartbeat on the run every epoch, cancellation checks, and (fine-tune,
    when the engine hands over the fold model) the per-epoch check on the evaluation set."""

    def __init__(self, *, run_id: int, folds: int, epochs: int, tracker=None):
        self.run_id = run_id
        self.tracker = tracker
        self.cancelled = False
        self.regressed = ""
        self.model_check: Callable[[int, Any], str] | None = None
        self.progress: dict[str, Any] = {"fold": 0, "folds": folds, "epoch": 0, "epochs": epochs, "stage": "training"}

    def beat(self, **progress) -> None:
        """Save progress and refresh the lease (one UPDATE); notice a cancellation request (one EXISTS)."""
        self.progress.update(progress)
        if lease_renew(self.run_id, progress=dict(self.progress)):
            self.cancelled = True

    def on_epoch(self, fold: int, epoch: int, metrics: dict) -> None:
        """fit() calls this after every epoch of every fold (1-based): MLflow first, then the run's progress."""
        if self.tracker is not None:
            self.tracker.on_epoch(fold, epoch, metrics)
        progress: dict[str, Any] = {"fold": int(fold), "epoch": int(epoch), "stage": "training"}
        if metrics.get("val_mae") is not None:
            progress["val_mae"] = round(float(metrics["val_mae"]), 3)
        self.beat(**progress)

    def on_model(self, fold: int, epoch: int, model) -> None:
        """Fine-tune: the fold model after an epoch, checked on the evaluation set (engine permitting)."""
        if self.model_check is not None and not self.regressed:
            self.regressed = self.model_check(int(fold), model)

    def should_stop(self) -> bool:
        """Checked by fit() before and after every epoch: a cancellation or a fine-tune regression stops the run."""
        self.beat()
        return self.cancelled or bool(self.regressed)


def training_run_execute(
    *,
    run_id: int,
    progress: bool = False,
    on_epoch: Callable[[int, int, dict], None] | None = None,
    auto_promote: bool | None = None,
    fold_parallel: bool | None = None,
) -> TrainingRun:
    """Run a queued training: lock, freeze, K-fold train, register, compare with Production, decide.

    Task-safe: a run that is not QUEUED any more is returned untouched (acks_late redelivery, a second worker).
    Raises TrainingBusy (the run stays queued) while another run holds the lock. Any other failure ends the run FAILED
    with a short reason, leaves Production as it was and releases the lock; the MLflow run ends FAILED and a version
    it registered is deleted again (the tracking module's TrainingTracker). A cancelled run ends CANCELLED the same way.
    `on_epoch(fold, epoch, metrics)` observes every epoch (tests, progress displays);
    `auto_promote` overrides settings.AUTO_PROMOTE for this run (`manage.py retrain --auto-promote`).
    `fold_parallel` (default: with a broker, training.services.folds.training_fold_parallel_enabled) hands the K folds
    to the training workers as one task each and returns the run still RUNNING; the worker that finishes the last
    fold finalises it. A fine-tune always trains its folds here (each epoch is checked against Production).
    """
    run = TrainingRun.objects.get(pk=run_id)
    if run.status != TrainingRun.Status.QUEUED:
        return run
    if run.cancel_requested:
        TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.CANCELLED, finished_at=timezone.now(), error="cancelled before it started"
        )
        return TrainingRun.objects.get(pk=run.pk)
    if not lease_acquire(run):
        return TrainingRun.objects.get(pk=run.pk)
    parallel = training_fold_parallel_enabled() if fold_parallel is None else fold_parallel
    return run_guarded(
        run.pk,
        lambda: _training_run_work(
            run_id=run.pk,
            progress=progress,
            on_epoch=on_epoch,
            auto_promote=settings.AUTO_PROMOTE if auto_promote is None else auto_promote,
            fold_parallel=parallel,
        ),
    )


def _training_run_work(
    *, run_id: int, progress: bool, on_epoch: Callable | None, auto_promote: bool, fold_parallel: bool
) -> TrainingRun | None:
    """Freeze the data and train; None when the folds were handed to the training workers (fold-parallel: the run
    stays RUNNING and the worker that finishes the last fold finalises it, training.services.folds). The steps:
    freeze the data (_run_data_freeze), prepare fine-tuning (_fine_tune_prepare), check there is enough to train,
    then fit, record and decide (recording.run_record_and_decide), the path a fold-parallel finaliser takes too."""
    run = TrainingRun.objects.get(pk=run_id)
    config = TrainConfig.from_dict(run.config)
    training_set, evaluation_set, train_samples = _run_data_freeze(run_id)
    production = gateway.tracking().get_alias_version(settings.MLFLOW_MODEL_NAME, PRODUCTION_ALIAS)
    hooks = _RunHooks(run_id=run_id, folds=config.folds, epochs=config.epochs)
    init_states, final_check = None, None
    if run.fine_tune:
        config, init_states, final_check = _fine_tune_prepare(
            run_id=run_id, config=config, production=production, evaluation_set=evaluation_set, hooks=hooks
        )
    _enough_samples_check(train_samples, config)
    if fold_parallel and not run.fine_tune:
        training_folds_dispatch(run_id=run_id, config=config)
        return None
    hooks.beat(stage="training")

    def fit(tracker):
        hooks.tracker = tracker
        result = _run_fit(
            config=config,
            samples=train_samples,
            negatives=dataset_negative_pairs(dataset=training_set),
            hooks=hooks,
            progress=progress,
            on_epoch=on_epoch,
            init_states=init_states,
        )
        if final_check is not None:
            hooks.beat(stage="checking fine-tuned model")
            regressed = final_check(result)
            if regressed:
                raise FineTuneRegressed(regressed + "; the candidate was discarded (nothing registered)")
        return result

    return run_record_and_decide(
        run=run,
        config=config,
        training_set=training_set,
        evaluation_set=evaluation_set,
        train_samples=train_samples,
        production=production,
        beat=hooks.beat,
        progress=hooks.progress,
        auto_promote=auto_promote,
        fit=fit,
    )


def _run_data_freeze(run_id: int) -> tuple[DatasetVersion, DatasetVersion, list]:
    """The run's training and evaluation sets frozen now, and the training samples."""
    lease_renew(run_id, progress={"stage": "freezing data"})
    training_set = dataset_freeze(kind=DatasetVersion.Kind.TRAINING)
    evaluation_set = dataset_freeze(kind=DatasetVersion.Kind.EVALUATION)
    TrainingRun.objects.filter(pk=run_id).update(dataset_version=training_set, evaluation_dataset=evaluation_set)
    return training_set, evaluation_set, dataset_samples(dataset=training_set)


def _fine_tune_prepare(
    *, run_id: int, config: TrainConfig, production: int | None, evaluation_set: DatasetVersion, hooks: _RunHooks
) -> tuple[TrainConfig, list, Callable]:
    """Fine-tuning starts from Production's fold models and is checked on the evaluation set every epoch (the hooks'
    model check) and at the end (the returned final check): (config, initial states, final check)."""
    from .finetune import fine_tune_checks, fine_tune_setup  # lazy: finetune imports torch (training worker only)

    if production is None:
        raise ValueError("fine-tuning needs a Production version to start from, and there is none")
    lease_renew(run_id, progress={"stage": "loading Production for fine-tuning"})
    config, init_states = fine_tune_setup(run_config=config, production=production)
    eval_samples = dataset_samples(dataset=evaluation_set)
    if not eval_samples:
        raise ValueError("fine-tuning checks every epoch on the evaluation set, and it is empty")
    per_epoch, final_check = fine_tune_checks(
        config=config, states=init_states, eval_samples=eval_samples, production=production
    )
    hooks.model_check = per_epoch
    hooks.progress.update(folds=config.folds, epochs=config.epochs)
    return config, init_states, final_check


def _enough_samples_check(samples: Sequence, config: TrainConfig) -> None:
    minimum = 2 * config.folds
    if len(samples) < minimum:
        raise ValueError(
            f"not enough labelled coins to train: {len(samples)} in the training set, at least {minimum} "
            f"needed for {config.folds} folds"
        )


def _run_fit(
    *,
    config: TrainConfig,
    samples: list,
    negatives: list,
    hooks: _RunHooks,
    progress: bool,
    on_epoch: Callable | None,
    init_states: list | None,
):
    """K-fold training in this process; a cancel (or a fine-tune that regressed) raises instead of a result."""
    from training.ml import kfold  # lazy: torch loads only in the training worker
    from training.ml.data import CoinPairDataset  # lazy: as kfold

    def epoch_hook(fold: int, epoch: int, metrics: dict) -> None:
        hooks.on_epoch(fold, epoch, metrics)
        if on_epoch is not None:
            on_epoch(fold, epoch, metrics)

    try:
        result = kfold.fit(
            config,
            samples,
            dataset=CoinPairDataset(samples, config, train=True, limits=settings.COINSITE_PHOTO_LIMITS),
            progress=progress,
            on_epoch=epoch_hook,
            should_stop=hooks.should_stop,
            init_state_dict=init_states,
            on_model=hooks.on_model,
            negatives=negatives,
        )
    except TrainingCancelled:
        if hooks.regressed:
            raise FineTuneRegressed(hooks.regressed + "; the candidate was discarded (nothing registered)") from None
        raise
    if hooks.cancelled:
        raise TrainingCancelled()
    return result
