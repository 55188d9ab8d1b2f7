"""The lease reaper racing the worker it judges: between the reaper reading a run as stale and writing FAILED, the
worker may beat (its heartbeat is fresh again) or finish. The reaper's UPDATE must then change nothing.

The race is made exact with a database execute wrapper: the worker's write runs just before the reaper's UPDATE
reaches the database, whatever Python code sits between the read and the write.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from training.models import TrainingRun
from training.services.lease import training_run_reap_stale

pytestmark = pytest.mark.django_db

LEASE_SECONDS = 60


@contextmanager
def just_before_the_reaper_writes(worker_write):
    """Run `worker_write()` once, right before the first UPDATE that marks a training run FAILED is executed."""
    table = TrainingRun._meta.db_table
    fired = []

    def wrapper(execute, sql, params, many, context):
        is_reaper_update = (
            sql.lstrip().upper().startswith("UPDATE")
            and table in sql
            and TrainingRun.Status.FAILED in [str(p) for p in (params or ())]
        )
        if is_reaper_update and not fired:
            fired.append(sql)
            worker_write()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield fired


@pytest.fixture
def stale_run(settings) -> TrainingRun:
    """A RUNNING run whose last heartbeat is older than the lease: what the reaper reads as a dead worker."""
    settings.TRAINING_LEASE_SECONDS = LEASE_SECONDS
    return TrainingRun.objects.create(
        config={},
        status=TrainingRun.Status.RUNNING,
        started_at=timezone.now() - timedelta(minutes=10),
        heartbeat_at=timezone.now() - timedelta(seconds=2 * LEASE_SECONDS),
    )


def test_reaper_leaves_a_run_whose_heartbeat_arrives_while_it_reaps(stale_run):
    # given a run read as stale, whose worker beats just before the reaper writes (what the heartbeat writes)
    fresh = timezone.now()

    def heartbeat():
        TrainingRun.objects.filter(pk=stale_run.pk, status=TrainingRun.Status.RUNNING).update(
            heartbeat_at=fresh, progress={"epoch": 2}
        )

    # when the reaper runs
    with just_before_the_reaper_writes(heartbeat) as fired:
        reaped = training_run_reap_stale()

    # then the race happened, and the live run keeps its lease
    assert fired, "the reaper never tried to mark the stale run failed: the race was not exercised"
    stale_run.refresh_from_db()
    assert reaped == []
    assert stale_run.status == TrainingRun.Status.RUNNING
    assert stale_run.heartbeat_at == fresh and stale_run.error == "" and stale_run.finished_at is None


def test_reaper_does_not_mark_a_run_failed_that_finished_while_it_reaps(stale_run):
    # given a run read as stale, whose worker finishes just before the reaper writes (what finishing writes)
    finished = timezone.now()

    def finish():
        TrainingRun.objects.filter(pk=stale_run.pk, status=TrainingRun.Status.RUNNING).update(
            status=TrainingRun.Status.SUCCEEDED, finished_at=finished
        )

    # when the reaper runs
    with just_before_the_reaper_writes(finish) as fired:
        reaped = training_run_reap_stale()

    # then the race happened, and the run stays succeeded
    assert fired, "the reaper never tried to mark the stale run failed: the race was not exercised"
    stale_run.refresh_from_db()
    assert reaped == []
    assert stale_run.status == TrainingRun.Status.SUCCEEDED
    assert stale_run.finished_at == finished and stale_run.error == ""


def test_reaper_still_reaps_a_stale_run_nobody_touches(stale_run):
    # given a stale run and no worker writing / when the reaper runs
    with just_before_the_reaper_writes(lambda: None) as fired:
        reaped = training_run_reap_stale()

    # then it is failed as a dead worker (the wrapper above sees the reaper's write)
    stale_run.refresh_from_db()
    assert fired and reaped == [stale_run.pk]
    assert stale_run.status == TrainingRun.Status.FAILED and "worker died" in stale_run.error
