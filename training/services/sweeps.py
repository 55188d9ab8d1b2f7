"""Hyperparameter sweeps: start one, run its trials as tasks on the `training` queue, end it with a normal training
run of the best configuration (registered, compared with Production by the usual gate; promoted only by
AUTO_PROMOTE), cancel it, reap trials whose worker died.

Optuna schedules (training.ml.tune): every trial task asks the study in the project's own database for its
parameters and tells it the outcome, so any number of training workers pull trials at once and a sweep survives a
restart of everything. The database rows (Sweep, SweepTrial) are the lease and the record of completion, as
TrainingFold is for a fold-parallel run (training.services.folds): whichever task settles the last trial queues the
finaliser, which claims the sweep once.

A trial whose worker died: its process killed, the broker gives the task back (acks_late, reject_on_worker_lost) and
the next claim sees the recorded process gone; its host lost, the reaper sees its heartbeat stale. Either way the
Optuna trial is told FAILED (its nested MLflow run ends FAILED), and the task asks a new trial, up to
TRAINING_FOLD_ATTEMPTS times; the sweep goes on.
"""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.db import IntegrityError, connections, transaction
from django.utils import timezone
from sqlalchemy.engine import URL

from registry import gateway
from registry.roles import can_train
from training.ml import tune
from training.ml.config import TrainConfig

from ..errors import error_text
from ..models import DatasetVersion, Sweep, SweepTrial
from ..signals import sweep_queued, sweep_trial_queued
from .datasets import dataset_freeze, dataset_samples
from .runs import training_config_load

logger = logging.getLogger(__name__)

OPEN = (SweepTrial.Status.QUEUED, SweepTrial.Status.RUNNING)
ACTIVE = (Sweep.Status.QUEUED, Sweep.Status.RUNNING)


# --- Optuna's storage: the project's database ----------------------------------------------------------------------


def optuna_storage_url() -> str:
    """SQLAlchemy URL of the project's database, as the connection Django uses now (the test database in tests)."""
    return storage_url_of(connections["default"].settings_dict, var_dir=Path(settings.VAR_DIR))


def storage_url_of(db: dict[str, Any], *, var_dir: Path) -> str:
    """The SQLAlchemy URL of a Django database settings dict (psycopg 3 for PostgreSQL).

    An in-memory SQLite database (the unit tests') cannot be opened by a second connection: Optuna then keeps its
    tables in a file beside the other local state (VAR_DIR/optuna.sqlite3)."""
    engine = db["ENGINE"]
    if engine.endswith("sqlite3"):
        name = str(db["NAME"])
        if name == ":memory:" or "mode=memory" in name or name.startswith("file:memorydb"):
            name = str(var_dir / "optuna.sqlite3")
        return f"sqlite:///{name}"
    if "postgresql" in engine:
        return URL.create(
            "postgresql+psycopg",
            username=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=int(db["PORT"]) if db.get("PORT") else None,
            database=db["NAME"],
        ).render_as_string(hide_password=False)
    raise ImproperlyConfigured(f"sweeps keep Optuna's study in SQLite or PostgreSQL, not {engine}")


@functools.lru_cache(maxsize=4)
def _storage(url: str) -> optuna.storages.RDBStorage:
    return tune.rdb_storage(url)


def sweep_study(sweep: Sweep) -> optuna.Study:
    """The sweep's Optuna study (created on first use), with its sampler and pruner."""
    return tune.study_load(
        name=sweep.study_name,
        storage=_storage(optuna_storage_url()),
        space=tune.SearchSpace.from_dict(sweep.space),
        base=TrainConfig.from_dict(sweep.base_config),
        seed=int(sweep.base_config.get("seed", 42)),
    )


# --- start, cancel, progress ---------------------------------------------------------------------------------------


def sweep_start(
    *,
    trials: int,
    space_path: str | None = None,
    timeout: int | None = None,
    dataset: DatasetVersion | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    requested_by=None,
    train_best: bool = True,
    enqueue: bool = True,
) -> Sweep:
    """Queue a sweep of ``trials`` trials over the YAML space at ``space_path`` (default configs/tune.yaml).

    Refused (ValidationError naming the field) with a bad space, fewer than 1 trial, or while another sweep is queued
    or running: two sweeps would share the training workers, each progressing at half the speed it shows."""
    if requested_by is not None and not can_train(requested_by):
        raise PermissionDenied("Only model owners can start a sweep.")
    if trials < 1:
        raise ValidationError({"trials": "a sweep needs at least 1 trial"})
    if timeout is not None and timeout < 1:
        raise ValidationError({"timeout": "the timeout is a number of seconds >= 1"})
    path = space_path or "configs/tune.yaml"
    if not Path(path).is_absolute() and not Path(path).exists():
        path = str(Path(settings.BASE_DIR) / path)  # relative to the project, wherever the command runs
    try:
        space = tune.SearchSpace.load(path)
    except tune.SearchSpaceError as error:
        raise ValidationError({"space": str(error)}) from error
    base = training_config_load(overrides=overrides)
    try:  # the base configuration must be a valid trial of the space (it is trial 0)
        tune.trial_config(base, space, space.defaults(base))
    except (ValueError, TypeError, KeyError) as error:
        raise ValidationError({"space": f"the base configuration is not a valid trial: {error}"}) from error
    with transaction.atomic():
        busy = Sweep.objects.filter(status__in=ACTIVE).first()
        if busy is not None:
            raise ValidationError({"sweep": f"{busy} is not finished: one sweep at a time shares the workers"})
        sweep = Sweep(
            space=space.to_dict(),
            space_path=str(path),
            trials_wanted=trials,
            timeout_seconds=timeout,
            dataset_version=dataset,
            base_config=base.to_dict(),
            train_best=train_best,
            study_name=f"coinsite-sweep-{uuid.uuid4().hex[:12]}",
            requested_by=requested_by if getattr(requested_by, "pk", None) else None,
        )
        sweep.full_clean()
        sweep.save()
        if enqueue:
            sweep_id = sweep.pk
            transaction.on_commit(lambda: sweep_queued.send(sender=Sweep, sweep_id=sweep_id))
    return sweep


def sweep_cancel(*, sweep: Sweep, actor) -> Sweep:
    """Stop a sweep: queued trials are skipped, running ones stop at their next epoch; nothing is trained after."""
    if not can_train(actor):
        raise PermissionDenied("Only model owners can cancel a sweep.")
    with transaction.atomic():
        Sweep.objects.filter(pk=sweep.pk, status__in=ACTIVE).update(cancel_requested=True)
        Sweep.objects.filter(pk=sweep.pk, status=Sweep.Status.QUEUED).update(
            status=Sweep.Status.CANCELLED, finished_at=timezone.now()
        )
    sweep.refresh_from_db()
    return sweep


@dataclass(frozen=True)
class SweepProgress:
    """How far a sweep is: trials settled of those wanted, pruned, failed, running, and the best CV MAE so far."""

    settled: int
    wanted: int
    pruned: int
    failed: int
    running: int
    best: float | None

    @property
    def text(self) -> str:
        parts = [f"{self.settled}/{self.wanted} trials", f"{self.pruned} pruned"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.running:
            parts.append(f"{self.running} running")
        if self.best is not None:
            parts.append(f"best MAE {self.best:.2f} y")
        return " · ".join(parts)


def sweep_progress(sweep: Sweep) -> SweepProgress:
    rows = list(sweep.trials.values_list("status", "value"))
    values = [v for s, v in rows if s == SweepTrial.Status.COMPLETE and v is not None]
    return SweepProgress(
        settled=sum(1 for s, _ in rows if s not in OPEN),
        wanted=sweep.trials_wanted,
        pruned=sum(1 for s, _ in rows if s == SweepTrial.Status.PRUNED),
        failed=sum(1 for s, _ in rows if s == SweepTrial.Status.FAILED),
        running=sum(1 for s, _ in rows if s == SweepTrial.Status.RUNNING),
        best=min(values) if values else sweep.best_value,
    )


# --- dispatch ------------------------------------------------------------------------------------------------------


def sweep_execute(*, sweep_id: int, dispatch: bool = True) -> Sweep:
    """QUEUED -> RUNNING: freeze the data (unless given), create the study with the base configuration as trial 0,
    the MLflow parent run, and one task per trial (queued after commit unless ``dispatch`` is False: the tune command
    runs them itself without a broker). A sweep that is not QUEUED any more is returned untouched."""
    sweep = Sweep.objects.get(pk=sweep_id)
    if sweep.status != Sweep.Status.QUEUED:
        return sweep
    if sweep.cancel_requested:
        return sweep_finish(sweep_id, Sweep.Status.CANCELLED, from_status=Sweep.Status.QUEUED)
    try:
        with transaction.atomic():
            claimed = Sweep.objects.filter(pk=sweep_id, status=Sweep.Status.QUEUED).update(
                status=Sweep.Status.RUNNING, started_at=timezone.now()
            )
    except IntegrityError:
        return sweep_finish(
            sweep_id,
            Sweep.Status.FAILED,
            from_status=Sweep.Status.QUEUED,
            error="another sweep is running; one sweep at a time shares the training workers",
        )
    if not claimed:
        return Sweep.objects.get(pk=sweep_id)
    try:
        dataset = sweep.dataset_version or dataset_freeze(kind=DatasetVersion.Kind.TRAINING)
        base = TrainConfig.from_dict(sweep.base_config)
        space = tune.SearchSpace.from_dict(sweep.space)
        folds = tune.trial_config(base, space, space.defaults(base)).folds
        count = len(dataset_samples(dataset=dataset))
        if count < 2 * folds:
            raise ValueError(f"{count} labelled coins; a {folds}-fold sweep needs at least {2 * folds}")
        study = sweep_study(sweep)
        study.enqueue_trial(space.defaults(base), user_attrs={"default": True}, skip_if_exists=True)
        run_id = gateway.tracking().sweeps.sweep_run_start(
            name=f"sweep-{sweep.pk}",
            params={
                "trials": sweep.trials_wanted,
                "pruner": space.pruner,
                "space": sweep.space,
                "dataset": dataset.content_hash,
                "study": sweep.study_name,
            },
            tags={"coinsite.sweep": sweep.pk, "coinsite.dataset": dataset.content_hash},
        )
    except Exception as error:  # noqa: BLE001 - a sweep that cannot start ends FAILED with the reason
        logger.exception("sweep %s could not start", sweep_id)
        return sweep_finish(sweep_id, Sweep.Status.FAILED, error=error_text(error))
    with transaction.atomic():
        Sweep.objects.filter(pk=sweep_id).update(dataset_version=dataset, mlflow_run_id=run_id)
        for index in range(sweep.trials_wanted):
            SweepTrial.objects.get_or_create(sweep_id=sweep_id, index=index)
        if dispatch:
            for index in range(sweep.trials_wanted):
                transaction.on_commit(
                    lambda index=index: sweep_trial_queued.send(sender=Sweep, sweep_id=sweep_id, index=index)
                )
    logger.info("sweep %s: %s trials queued for the training workers", sweep_id, sweep.trials_wanted)
    return Sweep.objects.get(pk=sweep_id)


def sweep_finish(sweep_id: int, status: str, *, from_status: str = Sweep.Status.RUNNING, **fields: Any) -> Sweep:
    Sweep.objects.filter(pk=sweep_id, status=from_status).update(status=status, finished_at=timezone.now(), **fields)
    return Sweep.objects.get(pk=sweep_id)
