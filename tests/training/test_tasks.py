"""Celery tasks of the training queue: thin, id-based, safe to run twice, routed to `training`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from coinsite.celery import app
from tests.factories import CoinFactory
from training import tasks
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "task_name",
    [
        "training.tasks.training_run_execute_task",
        "training.tasks.retrain_if_enough_labels_task",
        "training.tasks.training_run_reap_stale_task",
        "training.tasks.coins_rescore_task",
        "training.tasks.dataset_freeze_task",
    ],
)
def test_training_tasks_are_registered_and_routed_to_the_training_queue(task_name):
    assert task_name in app.tasks
    assert app.amqp.router.route({}, task_name)["queue"].name == "training"


def test_execute_task_is_a_no_op_for_a_run_that_is_not_queued():
    run = TrainingRun.objects.create(config={}, status=TrainingRun.Status.CANCELLED)

    assert tasks.training_run_execute_task.apply(args=[run.id]).get() == TrainingRun.Status.CANCELLED
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELLED


def test_execute_task_leaves_the_run_queued_while_another_holds_the_lock():
    TrainingRun.objects.create(config={}, status=TrainingRun.Status.RUNNING, heartbeat_at=timezone.now())
    waiting = TrainingRun.objects.create(config={})

    assert tasks.training_run_execute_task.apply(args=[waiting.id]).get() == "queued"
    waiting.refresh_from_db()
    assert waiting.status == TrainingRun.Status.QUEUED


def test_start_enqueues_the_execute_task_after_commit(django_capture_on_commit_callbacks, monkeypatch):
    from training.services.runs import training_run_start

    sent = []
    monkeypatch.setattr(tasks.training_run_execute_task, "delay", lambda run_id: sent.append(run_id))

    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_start(overrides=["epochs=1"])
        assert sent == [], "nothing is sent before the commit"

    assert sent == [run.id]


def test_reap_task_fails_runs_of_dead_workers(settings):
    settings.TRAINING_LEASE_SECONDS = 30
    dead = TrainingRun.objects.create(
        config={}, status=TrainingRun.Status.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=1)
    )

    assert tasks.training_run_reap_stale_task.apply().get() == [dead.id]
    dead.refresh_from_db()
    assert dead.status == TrainingRun.Status.FAILED and "worker died" in dead.error


def test_retrain_task_starts_a_run_only_with_enough_new_labels(settings, collector, django_capture_on_commit_callbacks):
    settings.RETRAIN_MIN_NEW_LABELS = 3
    for year in (1800, 1900):
        CoinFactory(owner=collector, verified_year=year)
    assert tasks.retrain_if_enough_labels_task.apply().get() is None
    assert not TrainingRun.objects.exists()

    CoinFactory(owner=collector, verified_year=2000)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run_id = tasks.retrain_if_enough_labels_task.apply().get()

    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == TrainingRun.Status.QUEUED and run.requested_by is None
    assert len(callbacks) == 1, "the run is handed to a training worker after commit"


def test_rescore_enqueues_one_small_task_per_chunk_of_coins(collector, django_capture_on_commit_callbacks, monkeypatch):
    from training.services import rescore

    sent = []
    monkeypatch.setattr(tasks.coins_rescore_task, "delay", lambda runs, requested_at: sent.append(runs))
    monkeypatch.setattr(rescore, "CHUNK", 3)
    coins = [CoinFactory(owner=collector) for _ in range(5)]
    ids = [c.id for c in coins]

    with django_capture_on_commit_callbacks(execute=True):
        assert rescore.coins_rescore(coin_ids=ids) == 5

    # two chunks (3 + 2 coins), each as runs of consecutive ids, together every coin once
    assert len(sent) == 2
    assert sorted(rescore.id_runs_expand(sent[0]) + rescore.id_runs_expand(sent[1])) == sorted(ids)
    assert rescore.id_runs([3, 4, 5, 9]) == [[3, 5], [9, 9]]


def test_a_finished_run_hands_the_lock_to_the_oldest_queued_run(settings, django_capture_on_commit_callbacks):
    from training.services.runs import training_run_execute, training_run_start

    settings.MLFLOW_MODEL_NAME = "coin-year-handover"
    first = training_run_start(overrides=["folds=2"], enqueue=False)
    waiting = training_run_start(overrides=["folds=2"], enqueue=False)

    with django_capture_on_commit_callbacks(execute=True):
        first = training_run_execute(run_id=first.id)  # fails at once: no labelled coins yet

    waiting.refresh_from_db()
    assert first.status == TrainingRun.Status.FAILED
    assert waiting.status == TrainingRun.Status.FAILED and "not enough labelled coins" in waiting.error, "it ran next"
