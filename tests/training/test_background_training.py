"""The embedded default without blocking: with no broker, Start training answers at once and the run trains in the
background of the server process, with the same progress and cancel as on a training worker.

The three that start a real background thread run in the PostgreSQL pass (integration): SQLite's in-memory test
database, shared between threads, refuses a write while another thread reads ("database table is locked") instead of
waiting, which left a run queued for good in one CI run, and failed the lock-waiting test's own read in another. These tests commit (transaction=True): the background
thread has its own database connection and sees only
committed rows, as in a real server.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from predictions.models import Coin
from predictions.services import coin_create
from tests.conftest import TINY_OVERRIDES
from training.ml import synthetic
from training.models import TrainingRun
from training.services import background

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

START_SECONDS_LIMIT = 1.0
RUN_SECONDS_LIMIT = 240.0


@pytest.fixture
def labelled_coins(collector):
    """16 generated coins with verified years: enough for the tiny 2-fold run."""
    for front, back, year in synthetic.iter_coins(16, seed=41, size=96):
        coin_create(
            owner=collector,
            front=front,
            back=back,
            source=Coin.Source.DEMO,
            verified_year=year,
            enqueue_prediction=False,
        )


@pytest.fixture
def embedded(settings, model_name):
    """No broker (Celery eager), background training on, a model name of this test alone."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.TRAINING_IN_BACKGROUND = True
    yield
    for run_id in background.training_runs_in_background():  # never leave a thread writing into the next test
        TrainingRun.objects.filter(pk=run_id).update(cancel_requested=True)
        background.training_run_background_wait(run_id=run_id, timeout=RUN_SECONDS_LIMIT)


def wait_for(run: TrainingRun, done, *, timeout: float = RUN_SECONDS_LIMIT) -> TrainingRun:
    """Poll the run's row (what the admin page shows) until `done(run)`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if done(run):
            return run
        time.sleep(0.2)
    pytest.fail(f"{run} did not get there in {timeout:.0f} s: status {run.status}, progress {run.progress}")


def start(client, overrides: list[str]) -> tuple[float, object]:
    """The owner opens Start training, then submits it: the submit is what is timed (the page's first load in a
    fresh process pays Django's one-time setup, about 1.2 s here, before any training code runs)."""
    assert client.get(reverse("admin:training_trainingrun_start")).status_code == 200
    started = time.perf_counter()
    response = client.post(reverse("admin:training_trainingrun_start"), {"overrides": "\n".join(overrides)})
    return time.perf_counter() - started, response


@pytest.mark.integration
def test_start_training_returns_at_once_and_the_run_completes_in_the_background(
    client, model_owner, labelled_coins, embedded, postgres_only
):
    client.force_login(model_owner)

    seconds, response = start(client, TINY_OVERRIDES)

    run = TrainingRun.objects.get()
    print(f"\nStart training answered in {seconds:.3f} s; the run was {run.status} then")
    assert response.status_code == 302
    assert seconds < START_SECONDS_LIMIT
    assert run.status in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING), "nothing trained in the request"
    banner = [str(message) for message in get_messages(response.wsgi_request)]
    assert any("started in the background of this server" in text for text in banner), banner
    assert not any("training workers" in text for text in banner)

    # while it trains, its page shows it running with its progress
    running = wait_for(run, lambda r: r.status != TrainingRun.Status.QUEUED and r.progress.get("stage"))
    page = client.get(reverse("admin:training_trainingrun_change", args=[run.pk])).content.decode()
    assert "data-mt-autorefresh" in page or running.status == TrainingRun.Status.SUCCEEDED

    finished = wait_for(run, lambda r: r.status not in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING))
    background.training_run_background_wait(run_id=run.pk, timeout=30)
    print(f"the run ended {finished.status} ({finished.duration}), progress {finished.progress}")
    assert finished.status == TrainingRun.Status.SUCCEEDED, finished.error
    assert finished.progress["stage"] == "done" and finished.progress["epoch"] == finished.progress["epochs"]
    assert finished.model_version is not None
    assert "Succeeded" in client.get(reverse("admin:training_trainingrun_change", args=[run.pk])).content.decode()


@pytest.mark.integration
def test_cancel_stops_a_run_training_in_the_background(client, model_owner, labelled_coins, embedded, postgres_only):
    client.force_login(model_owner)
    seconds, _ = start(client, [*TINY_OVERRIDES, "epochs=500"])
    assert seconds < START_SECONDS_LIMIT
    run = TrainingRun.objects.get()
    wait_for(run, lambda r: r.status == TrainingRun.Status.RUNNING and (r.progress.get("epoch") or 0) >= 1)

    response = client.post(reverse("admin:training_trainingrun_cancel", args=[run.pk]))

    assert response.status_code == 302
    cancelled = wait_for(run, lambda r: r.status != TrainingRun.Status.RUNNING, timeout=60)
    print(f"\ncancelled at {cancelled.progress}: {cancelled.status}, {cancelled.error!r}")
    assert cancelled.status == TrainingRun.Status.CANCELLED
    assert cancelled.progress["epoch"] < 500
    assert background.training_run_background_wait(run_id=run.pk, timeout=30)
    assert not hasattr(cancelled, "model_version") or cancelled.model_version is None


@pytest.mark.integration
def test_a_second_run_waits_for_the_lock_and_the_banner_says_so(client, model_owner, embedded, postgres_only):
    holder = TrainingRun.objects.create(config={}, status=TrainingRun.Status.RUNNING)
    client.force_login(model_owner)

    seconds, response = start(client, TINY_OVERRIDES)

    waiting = TrainingRun.objects.exclude(pk=holder.pk).get()
    background.training_run_background_wait(run_id=waiting.pk, timeout=30)
    waiting.refresh_from_db()
    banner = " ".join(str(message) for message in get_messages(response.wsgi_request))
    assert seconds < START_SECONDS_LIMIT
    assert waiting.status == TrainingRun.Status.QUEUED
    assert f"queued behind {holder}" in banner


def test_with_a_broker_the_banner_says_queued_for_the_training_workers(client, model_owner, settings, monkeypatch):
    from training import tasks

    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = []
    monkeypatch.setattr(tasks.training_run_execute_task, "delay", lambda run_id: sent.append(run_id))
    client.force_login(model_owner)

    _, response = start(client, TINY_OVERRIDES)

    run = TrainingRun.objects.get()
    banner = " ".join(str(message) for message in get_messages(response.wsgi_request))
    assert sent == [run.pk] and run.status == TrainingRun.Status.QUEUED
    assert "queued for the training workers" in banner
    assert background.training_runs_in_background() == []
