"""The claims that keep a fold-parallel run's workers apart, without training anything: the finaliser runs once per
run, and the reaper never takes back a fold that another worker claimed (or finished) after the reaper read it.

The slow end-to-end fold tests (tests/training/test_fold_parallel.py) drive whole runs; these pin each guard on its
own, in the fast tier, so that removing one fails a test named after it; the finalisers' real race (concurrent
claims on one row) runs in the PostgreSQL pass.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db.models.signals import post_init
from django.utils import timezone

from tests.concurrency import at_once
from training.models import TrainingFold, TrainingRun
from training.services import folds

pytestmark = pytest.mark.django_db

LEASE_SECONDS = 60


@pytest.fixture
def finished_folds_run():
    """A RUNNING fold-parallel run whose two folds are done, their outputs stored, waiting for its finaliser."""
    run = TrainingRun.objects.create(
        config={"folds": 2}, status=TrainingRun.Status.RUNNING, heartbeat_at=timezone.now()
    )
    for index in range(2):
        TrainingFold.objects.create(run=run, index=index, status=TrainingFold.Status.DONE, output=b"weights")
    return run


@pytest.fixture
def finalise_calls(monkeypatch) -> list[int]:
    """The finaliser's work replaced by a recorder: which runs got combined, registered and decided."""
    calls: list[int] = []

    def record(run_id: int) -> TrainingRun:
        calls.append(run_id)
        return TrainingRun.objects.get(pk=run_id)

    monkeypatch.setattr(folds, "_finalise", record)
    return calls


def test_a_second_finaliser_does_nothing_while_the_first_is_still_combining(finished_folds_run, finalise_calls):
    # given a run whose finaliser already claimed it and is still combining the folds (status still RUNNING)
    claimed_at = timezone.now() - timedelta(seconds=5)
    TrainingRun.objects.filter(pk=finished_folds_run.pk).update(finalising_at=claimed_at)

    # when a second "last fold" (or a redelivered finaliser task) asks for the finaliser
    run = folds.training_run_finalise(run_id=finished_folds_run.pk)

    # then it neither combines nor registers anything, and leaves the first finaliser's claim and inputs alone
    assert finalise_calls == []
    assert run.status == TrainingRun.Status.RUNNING and run.finalising_at == claimed_at
    assert list(TrainingFold.objects.filter(run=run).values_list("output", flat=True)) == [b"weights", b"weights"]


def test_the_first_finaliser_claims_the_run_and_combines_it_once(finished_folds_run, finalise_calls):
    # when the finaliser is asked for twice in a row
    folds.training_run_finalise(run_id=finished_folds_run.pk)
    folds.training_run_finalise(run_id=finished_folds_run.pk)

    # then only the first call combined the folds (the claim is what the test above guards: it must be reachable)
    assert finalise_calls == [finished_folds_run.pk]
    finished_folds_run.refresh_from_db()
    assert finished_folds_run.finalising_at is not None


@pytest.fixture
def silent_fold(settings):
    """Fold 1 of a RUNNING run, held by a worker whose heartbeat is older than the lease (a lost host, as it looks);
    fold 2 trains on a live worker."""
    settings.TRAINING_LEASE_SECONDS = LEASE_SECONDS
    silent = timezone.now() - timedelta(seconds=LEASE_SECONDS + 1)
    run = TrainingRun.objects.create(config={"folds": 2}, status=TrainingRun.Status.RUNNING, heartbeat_at=silent)
    TrainingFold.objects.create(
        run=run, index=1, status=TrainingFold.Status.RUNNING, worker="live-host:9", heartbeat_at=timezone.now()
    )
    return TrainingFold.objects.create(
        run=run, index=0, status=TrainingFold.Status.RUNNING, worker="lost-host:42", attempts=1, heartbeat_at=silent
    )


@pytest.fixture
def after_the_reaper_read(silent_fold):
    """Runs `change` on the fold's row right after the reaper loaded the fold (between its read and its write), as a
    worker on another host would in that moment. Yields a setter for `change`."""
    changes: list = []

    def on_load(sender, instance, **kwargs):
        if instance.pk == silent_fold.pk and changes:
            changes.pop()()  # once: the update below loads no instance, but later reads must see the real row

    post_init.connect(on_load, sender=TrainingFold, weak=False)
    try:
        yield changes.append
    finally:
        post_init.disconnect(on_load, sender=TrainingFold)


@pytest.mark.parametrize(
    ("what_happened", "fields"),
    [
        ("another worker claimed it", {"worker": "other-host:7", "attempts": 2}),
        ("its worker finished it", {"status": TrainingFold.Status.DONE}),
    ],
)
def test_the_reaper_never_requeues_a_fold_that_changed_hands_after_it_looked(
    silent_fold, after_the_reaper_read, django_capture_on_commit_callbacks, what_happened, fields
):
    # given a silent fold that, just after the reaper read it, another worker claimed or its own worker finished
    after_the_reaper_read(
        lambda: TrainingFold.objects.filter(pk=silent_fold.pk).update(heartbeat_at=timezone.now(), **fields)
    )

    # when the reaper queues the silent folds again
    with django_capture_on_commit_callbacks(execute=False) as queued:
        requeued = folds.training_folds_requeue_stale()

    # then that fold is left as the other worker left it: no second worker trains it, a done fold stays done
    assert requeued == [] and queued == [], what_happened
    fold = TrainingFold.objects.get(pk=silent_fold.pk)
    assert (fold.status, fold.worker) == (
        fields.get("status", TrainingFold.Status.RUNNING),
        fields.get("worker", "lost-host:42"),
    )


def test_the_reaper_requeues_a_fold_nobody_touched(
    silent_fold, after_the_reaper_read, django_capture_on_commit_callbacks
):
    # given the same silent fold, and nothing happening to it while the reaper works (the guard lets it through)
    after_the_reaper_read(lambda: None)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        requeued = folds.training_folds_requeue_stale()

    assert requeued == [(silent_fold.run_id, 0)] and len(queued) == 1
    assert TrainingFold.objects.get(pk=silent_fold.pk).status == TrainingFold.Status.QUEUED


@pytest.mark.django_db(transaction=True)
def test_finalisers_racing_for_one_run_combine_it_once_on_postgresql(postgres_row_locks, monkeypatch):
    # given three runs whose folds are all done, and the finaliser's work replaced by a slow recorder
    calls: list[int] = []

    def record(run_id: int) -> TrainingRun:
        calls.append(run_id)
        time.sleep(0.2)  # the first claim is still "combining" while the others arrive
        return TrainingRun.objects.get(pk=run_id)

    monkeypatch.setattr(folds, "_finalise", record)
    for _round in range(3):
        run = TrainingRun.objects.create(config={"folds": 2}, status=TrainingRun.Status.RUNNING)
        for index in range(2):
            TrainingFold.objects.create(run=run, index=index, status=TrainingFold.Status.DONE, output=b"weights")

        # when four workers finalise it at the same moment (four "last folds", redelivered tasks)
        outcomes = at_once(*[lambda run_id=run.pk: folds.training_run_finalise(run_id=run_id) for _ in range(4)])

        # then exactly one of them combined it
        assert all(isinstance(outcome, TrainingRun) for outcome in outcomes), outcomes
        assert calls.count(run.pk) == 1, calls
