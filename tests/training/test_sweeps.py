"""Hyperparameter sweeps on the embedded default (SQLite, Celery eager): a tiny real sweep end to end, progress,
cancel, one sweep at a time, a trial whose worker died, and bad input refused by name."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from registry.models import ModelVersion
from tests.training.test_learning_loop import add_coins
from training.ml import tracking
from training.models import Sweep, SweepTrial, TrainingRun
from training.services.runs import training_run_execute
from training.services.sweep_trials import sweep_finalise, sweep_trial_execute, sweep_trials_requeue_stale
from training.services.sweeps import (
    storage_url_of,
    sweep_cancel,
    sweep_execute,
    sweep_progress,
    sweep_start,
    sweep_study,
)

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.slow]

BASE = ["image_size=128", "batch_size=8", "serve_int8=false"]
TINY_SPACE = """
pruner: median
startup_trials: 1
fixed: {folds: 2, patience: 0}
params:
  lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
  optimizer: [adamw, sgd]
  epochs: {type: int, low: 1, high: 2}
  aug_strength: {type: float, low: 0.0, high: 1.5}
"""


@pytest.fixture
def tiny_space(tmp_path) -> str:
    path = tmp_path / "tune.yaml"
    path.write_text(TINY_SPACE, encoding="utf-8")
    return str(path)


def run_sweep(space: str, trials: int = 3, **kwargs) -> Sweep:
    sweep = sweep_start(trials=trials, space_path=space, overrides=BASE, enqueue=False, **kwargs)
    sweep = sweep_execute(sweep_id=sweep.pk, dispatch=False)
    for index in range(trials):
        sweep_trial_execute(sweep_id=sweep.pk, index=index, finalise=False)
    return sweep


def test_a_tiny_sweep_ends_with_the_best_configuration_registered_and_compared(
    model_name, collector, model_owner, tiny_space
):
    # given 24 labelled coins and no Production yet
    add_coins(collector, 24, seed=11)

    # when a model owner runs a 3-trial sweep and its best configuration trains as a normal run
    sweep = run_sweep(tiny_space, requested_by=model_owner)
    sweep = sweep_finalise(sweep_id=sweep.pk, enqueue=False)
    run = training_run_execute(run_id=sweep.training_run_id)

    # then every trial settled in Optuna's study, trial 0 being the default configuration on the same folds
    assert sweep.status == Sweep.Status.SUCCEEDED, sweep.error
    trials = list(sweep.trials.order_by("index"))
    assert trials[0].status == "complete" and all(t.status in ("complete", "pruned") for t in trials)
    study = sweep_study(sweep)
    assert len(study.trials) == 3 and study.trials[0].user_attrs == {"default": True}
    assert sweep.default_value == pytest.approx(study.trials[0].value)
    assert sweep.best_value == pytest.approx(study.best_value) and sweep.best_value <= sweep.default_value
    assert sweep_progress(sweep).text.startswith("3/3 trials · ")
    # ... MLflow holds the parent with the plots and the trials table, and one nested run per trial with its state
    nested = tracking.sweeps.nested_runs(sweep.mlflow_run_id)
    assert sorted(r["name"] for r in nested) == ["trial-0", "trial-1", "trial-2"]
    assert {r["state"] for r in nested} <= {"complete", "pruned"}
    assert all("lr" in r["params"] and "val_mae" in r["metrics"] for r in nested)
    artifacts = tracking.list_artifacts(sweep.mlflow_run_id)
    assert {"plots/optimization_history.png", "plots/parallel_coordinate.png", "trials.json"} <= set(artifacts)
    # ... and the best configuration became a version, compared by the usual gate (the first one: Production)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert run.origin == TrainingRun.Origin.SWEEP and run.requested_by == model_owner
    assert run.config["lr"] == pytest.approx(sweep.best_params["lr"]) and run.config["folds"] == 2
    assert ModelVersion.objects.filter(training_run=run).exists() and run.comparison


def test_a_cancelled_sweep_skips_its_trials_and_trains_nothing(collector, model_owner, tiny_space):
    add_coins(collector, 12, seed=3)
    sweep = sweep_start(trials=3, space_path=tiny_space, overrides=BASE, enqueue=False)
    sweep = sweep_execute(sweep_id=sweep.pk, dispatch=False)

    sweep_cancel(sweep=sweep, actor=model_owner)
    states = [sweep_trial_execute(sweep_id=sweep.pk, index=i, finalise=False) for i in range(3)]
    sweep = sweep_finalise(sweep_id=sweep.pk)

    assert states == ["skipped"] * 3
    assert sweep.status == Sweep.Status.CANCELLED and sweep.training_run is None, sweep.error


def test_only_one_sweep_at_a_time_shares_the_workers(db, tiny_space):
    first = sweep_start(trials=2, space_path=tiny_space, overrides=BASE, enqueue=False)

    with pytest.raises(ValidationError, match=f"Sweep #{first.pk}"):
        sweep_start(trials=2, space_path=tiny_space, overrides=BASE, enqueue=False)


def test_a_trial_whose_worker_died_fails_in_optuna_and_the_task_asks_a_new_trial(collector, tiny_space):
    # given a sweep whose task 0 was claimed by a process that died mid-trial (its Optuna trial left RUNNING)
    add_coins(collector, 12, seed=5)
    sweep = sweep_start(trials=1, space_path=tiny_space, overrides=BASE, enqueue=False)
    sweep = sweep_execute(sweep_id=sweep.pk, dispatch=False)
    dead = sweep_study(sweep).ask()
    SweepTrial.objects.filter(sweep=sweep, index=0).update(
        status=SweepTrial.Status.RUNNING,
        worker=f"{socket.gethostname()}:{dead_pid()}",
        attempts=1,
        number=dead.number,
        heartbeat_at=timezone.now(),
        started_at=timezone.now(),
    )

    # when the broker gives the task back and it runs again
    state = sweep_trial_execute(sweep_id=sweep.pk, index=0, finalise=False)
    sweep = sweep_finalise(sweep_id=sweep.pk, train_best=False)

    # then the dead trial is FAILED, a new trial ran, and the sweep completes
    slot = sweep.trials.get()
    assert state in ("complete", "pruned") and slot.attempts == 2 and slot.lost_numbers == [dead.number]
    assert [t.state.name for t in sweep_study(sweep).trials] == ["FAIL", "COMPLETE"]
    assert sweep.status == Sweep.Status.SUCCEEDED


def test_the_reaper_queues_again_a_trial_whose_host_went_silent(collector, tiny_space, settings):
    add_coins(collector, 12, seed=6)
    sweep = sweep_start(trials=1, space_path=tiny_space, overrides=BASE, enqueue=False)
    sweep = sweep_execute(sweep_id=sweep.pk, dispatch=False)
    silent = sweep_study(sweep).ask()
    SweepTrial.objects.filter(sweep=sweep, index=0).update(
        status=SweepTrial.Status.RUNNING,
        worker="another-host:42",
        attempts=1,
        number=silent.number,
        heartbeat_at=timezone.now() - timedelta(seconds=settings.TRAINING_LEASE_SECONDS + 5),
    )

    requeued = sweep_trials_requeue_stale()

    assert requeued == [(sweep.pk, 0)], list(SweepTrial.objects.values())
    assert sweep.trials.get().status == SweepTrial.Status.QUEUED
    assert sweep_study(sweep).trials[0].state.name == "FAIL"


def dead_pid() -> int:
    """A process id that no process has on this host."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_a_bad_space_or_trial_count_is_refused_by_name(db, tmp_path, tiny_space):
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  seed: [1, 2]\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="same folds"):
        sweep_start(trials=2, space_path=str(bad), enqueue=False)
    with pytest.raises(ValidationError, match="at least 1 trial"):
        sweep_start(trials=0, space_path=tiny_space, enqueue=False)
    with pytest.raises(CommandError, match="space: search space file not found"):
        call_command("tune", "--trials", "2", "--space", str(tmp_path / "missing.yaml"))
    with pytest.raises(CommandError, match="--dataset 999"):
        call_command("tune", "--trials", "2", "--dataset", "999")


def test_the_optuna_storage_is_the_projects_database(tmp_path):
    postgres = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "coinsite",
        "USER": "app",
        "PASSWORD": "s3cret",
        "HOST": "db.internal",
        "PORT": "5432",
    }
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db.sqlite3")}
    memory = {"ENGINE": "django.db.backends.sqlite3", "NAME": "file:memorydb_default?mode=memory&cache=shared"}

    assert storage_url_of(postgres, var_dir=tmp_path) == "postgresql+psycopg://app:s3cret@db.internal:5432/coinsite"
    assert storage_url_of(sqlite, var_dir=tmp_path) == f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert storage_url_of(memory, var_dir=tmp_path) == f"sqlite:///{Path(tmp_path) / 'optuna.sqlite3'}"
