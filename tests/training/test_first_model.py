"""The first model's time to go and every page's banner while it trains (training/services/first_model.py,
training/context_processors.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import ModelVersionFactory
from tests.pages import page_text
from training.models import TrainingRun
from training.services.first_model import TAIL_SECONDS, first_model_progress, load_slowdown, remaining_seconds


def test_the_time_to_go_is_the_measured_speed_times_the_epochs_left_plus_the_tail():
    assert remaining_seconds(elapsed=30.0, done=3, total=12) == pytest.approx(90.0 + TAIL_SECONDS)
    assert remaining_seconds(elapsed=30.0, done=0, total=12) is None  # nothing measured yet


def test_the_first_estimate_grows_with_the_load_beyond_the_cores():
    assert load_slowdown(0.2, 2) == 1.0
    assert load_slowdown(3.0, 2) == pytest.approx(2.0)
    assert load_slowdown(7.0, 2) == pytest.approx(4.0)


def test_progress_of_a_running_first_run_comes_from_its_epochs_and_its_start(db):
    # given a run that trained 3 of 2 x 4 epochs in 60 s
    TrainingRun.objects.create(
        status=TrainingRun.Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=60),
        heartbeat_at=timezone.now(),
        progress={"fold": 1, "folds": 2, "epoch": 3, "epochs": 4, "stage": "training"},
    )

    progress = first_model_progress()

    assert (progress.epochs_done, progress.epochs_total) == (3, 8)
    assert progress.minutes_left == pytest.approx((60 / 3 * 5 + TAIL_SECONDS) / 60, rel=0.05)
    assert progress.time_left == "about 2 min to go"


def test_a_fine_tune_or_a_finished_run_is_no_first_model(db):
    TrainingRun.objects.create(status=TrainingRun.Status.RUNNING, fine_tune=True, heartbeat_at=timezone.now())
    TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)

    assert first_model_progress() is None


def test_pages_say_a_first_model_is_on_its_way_while_none_serves(client, no_model, db):
    # given no model and a queued first run
    TrainingRun.objects.create(status=TrainingRun.Status.QUEUED)

    text = page_text(client.get(reverse("login")))

    assert "The first model is on its way (queued). Uploads are kept and get their year as soon as it lands." in text
    assert "No model in production yet" in text


def test_pages_say_nothing_of_a_first_model_when_nothing_trains(client, no_model, db):
    assert "on its way" not in page_text(client.get(reverse("login")))


def test_pages_with_a_model_in_production_show_no_banner(client, settings, db):
    # given a version in production (its mirror row, as a promotion writes it) and a retraining queued
    ModelVersionFactory(name=settings.MLFLOW_MODEL_NAME, is_production=True)
    TrainingRun.objects.create(status=TrainingRun.Status.QUEUED)

    text = page_text(client.get(reverse("login")))

    assert "on its way" not in text and "Model in production" in text
