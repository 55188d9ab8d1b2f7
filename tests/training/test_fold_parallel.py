"""Fold-parallel runs, driven step by step as the workers would: the coordinator queues one task per fold, each fold
trains on its own and records its output, the last one triggers an idempotent finaliser, and until that finaliser's
comparison nothing a fold does changes Production. A fold whose worker died is trained again; a failing or cancelled
fold ends the run without registering anything.

The tasks are not run here (the on-commit callbacks that would enqueue them are captured, not executed): the real
workers, SIGKILL and two-worker timing are in tests/integration/test_fold_parallel_workers.py.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import ModelVersion
from tests.training.test_learning_loop import TINY, add_coins, production_version
from training.ml import tracking
from training.models import TrainingFold, TrainingRun
from training.services import folds
from training.services.lease import training_run_reap_stale
from training.services.runs import training_run_execute, training_run_start

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.slow]


def start_parallel(django_capture_on_commit_callbacks, overrides=TINY) -> tuple[TrainingRun, list]:
    """The coordinator's part: lock, freeze, queue the folds; returns the run and the captured enqueue callbacks."""
    run = training_run_start(overrides=overrides, enqueue=False)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = training_run_execute(run_id=run.id, fold_parallel=True)
    return run, callbacks


def test_folds_train_apart_and_the_last_one_finalises_the_run_once(
    model_name, collector, django_capture_on_commit_callbacks
):
    add_coins(collector, 32, seed=11)

    run, queued = start_parallel(django_capture_on_commit_callbacks)

    # the coordinator returned with the run still holding the lock, one task per fold queued, nothing registered
    assert run.status == TrainingRun.Status.RUNNING and len(queued) == 2
    assert list(run.folds.values_list("index", "status")) == [(0, "queued"), (1, "queued")]
    assert run.progress["folds_done"] == 0 and run.progress["epochs_done"] == 0
    assert tracking.list_versions(model_name) == []

    # a worker trains the second fold first; the run goes on, still nothing registered
    with django_capture_on_commit_callbacks(execute=False) as after_first:
        assert folds.training_fold_execute(run_id=run.id, index=1) == "done"
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING and after_first == []
    assert run.progress["folds_done"] == 1 and run.progress["epochs_done"] == 1
    assert production_version(model_name) is None

    # the last fold asks for the finaliser, which registers, compares and puts the first version in Production
    with django_capture_on_commit_callbacks(execute=False) as after_last:
        assert folds.training_fold_execute(run_id=run.id, index=0) == "done"
    assert len(after_last) == 1
    finished = folds.training_run_finalise(run_id=run.id)
    assert finished.status == TrainingRun.Status.SUCCEEDED, finished.error
    assert finished.verdict == TrainingRun.Verdict.PROMOTED
    assert production_version(model_name) == ModelVersion.objects.get(training_run=finished).version
    assert len(finished.metrics["folds"]) == 2 and finished.progress["stage"] == "done"
    assert not TrainingFold.objects.filter(run=finished, output__isnull=False).exists(), "outputs dropped"

    # a second finaliser (a redelivered task) and a redelivered fold change nothing
    versions = tracking.list_versions(model_name)
    assert folds.training_run_finalise(run_id=run.id).status == TrainingRun.Status.SUCCEEDED
    assert folds.training_fold_execute(run_id=run.id, index=0) == "skipped"
    assert tracking.list_versions(model_name) == versions


def test_a_failing_fold_fails_the_run_and_production_stays(
    model_name, collector, django_capture_on_commit_callbacks, monkeypatch
):
    add_coins(collector, 32, seed=11)
    run, _ = start_parallel(django_capture_on_commit_callbacks)
    assert folds.training_fold_execute(run_id=run.id, index=0) == "done"

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr("training.ml.folds.fit_fold", out_of_memory)  # services.folds imports it when a fold runs
    assert folds.training_fold_execute(run_id=run.id, index=1) == "failed"

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and "fold 2: RuntimeError: CUDA out of memory" in run.error
    assert tracking.list_versions(model_name) == [] and production_version(model_name) is None
    assert folds.training_run_finalise(run_id=run.id).status == TrainingRun.Status.FAILED


def test_cancelling_stops_the_next_fold_and_ends_the_run_cancelled(
    model_name, collector, django_capture_on_commit_callbacks
):
    add_coins(collector, 32, seed=11)
    run, _ = start_parallel(django_capture_on_commit_callbacks)
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)

    assert folds.training_fold_execute(run_id=run.id, index=0) == "cancelled"

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELLED
    assert folds.training_fold_execute(run_id=run.id, index=1) == "skipped"  # the run is over
    assert tracking.list_versions(model_name) == []


@pytest.fixture
def running_fold(model_owner):
    run = TrainingRun.objects.create(config={"folds": 2}, status=TrainingRun.Status.RUNNING)
    return TrainingFold.objects.create(
        run=run, index=0, status=TrainingFold.Status.RUNNING, attempts=1, heartbeat_at=timezone.now()
    )


def test_a_fold_whose_process_died_is_claimed_again(running_fold):
    dead = 2**22 + 12345  # above pid_max's default: no such process
    running_fold.worker = f"{socket.gethostname()}:{dead}"
    running_fold.save()

    claimed = folds._fold_claim(running_fold.run_id, 0)

    assert claimed is not None and claimed.attempts == 2
    assert claimed.worker == f"{socket.gethostname()}:{os.getpid()}"


@pytest.mark.parametrize("worker", ["other-host:1", "this-host-live"])
def test_a_fold_held_by_a_live_process_is_left_alone(running_fold, worker):
    running_fold.worker = f"{socket.gethostname()}:{os.getppid()}" if worker == "this-host-live" else worker
    running_fold.save()

    assert folds._fold_claim(running_fold.run_id, 0) is None
    running_fold.refresh_from_db()
    assert running_fold.attempts == 1


def test_a_fold_that_kept_dying_fails_its_run(running_fold, settings):
    settings.TRAINING_FOLD_ATTEMPTS = 1
    running_fold.worker = f"{socket.gethostname()}:{2**22 + 1}"
    running_fold.save()

    assert folds.training_fold_execute(run_id=running_fold.run_id, index=0) == "failed"

    run = TrainingRun.objects.get(pk=running_fold.run_id)
    assert run.status == TrainingRun.Status.FAILED and "fold 1 failed 1 times" in run.error


def test_the_reaper_queues_again_a_fold_whose_host_went_silent(
    running_fold, settings, django_capture_on_commit_callbacks
):
    settings.TRAINING_LEASE_SECONDS = 60
    TrainingFold.objects.filter(pk=running_fold.pk).update(
        worker="lost-host:42", heartbeat_at=timezone.now() - timedelta(seconds=61)
    )
    TrainingRun.objects.filter(pk=running_fold.run_id).update(heartbeat_at=timezone.now() - timedelta(seconds=61))

    with django_capture_on_commit_callbacks(execute=False) as queued:
        requeued = folds.training_folds_requeue_stale()
        reaped = training_run_reap_stale()

    assert requeued == [(running_fold.run_id, 0)] and len(queued) == 1 and reaped == []
    running_fold.refresh_from_db()
    assert running_fold.status == TrainingFold.Status.QUEUED
    run = TrainingRun.objects.get(pk=running_fold.run_id)
    assert run.status == TrainingRun.Status.RUNNING, "not reaped: its fold is queued again"


def test_the_reaper_asks_again_for_a_finaliser_that_was_lost(
    running_fold, settings, django_capture_on_commit_callbacks
):
    settings.TRAINING_LEASE_SECONDS = 60
    silent = timezone.now() - timedelta(seconds=61)
    TrainingFold.objects.filter(pk=running_fold.pk).update(status="done", heartbeat_at=silent)
    TrainingFold.objects.create(run=running_fold.run, index=1, status="done", heartbeat_at=silent)
    TrainingRun.objects.filter(pk=running_fold.run_id).update(heartbeat_at=silent)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        folds.training_folds_requeue_stale()
        reaped = training_run_reap_stale()

    assert len(queued) == 1 and reaped == [], "the finaliser is asked for again, the run is not reaped"
    with django_capture_on_commit_callbacks(execute=False) as again:
        folds.training_folds_requeue_stale()
    assert again == [], "not twice within the lease"
