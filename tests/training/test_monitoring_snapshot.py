"""The monitoring page reads figures a background refresh stored: it measures no photo in the request, says how old
its figures are, and asks for a refresh (once) when they are older than MONITORING_REFRESH_SECONDS."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from predictions.sweeps import SweepResult
from registry.models import Promotion
from tests.factories import ModelVersionFactory, UserFactory
from tests.training.test_monitoring import MONITORING, coin_with, predict, verify
from training.models import CoinPhotoStats, MonitoringSnapshot
from training.services.monitoring import monitoring_report
from training.services.monitoring_snapshot import (
    monitoring_figures_get,
    monitoring_refresh_request,
    monitoring_refresh_wait,
    monitoring_snapshot_refresh,
    monitoring_snapshots_refresh,
    report_from_json,
    report_to_json,
)
from training.tasks import monitoring_refresh_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(client, model_owner):
    client.force_login(model_owner)
    return client


@pytest.fixture
def served(collector, settings):
    """Two versions, each with predictions verified later and photos served (the drift figures need them)."""
    settings.MLFLOW_MODEL_NAME = "coin-year"
    now = timezone.now()
    v1 = ModelVersionFactory(version=1, metrics={"mae": 2.5})
    v2 = ModelVersionFactory(version=2, metrics={"mae": 1.5}, is_production=True, aliases=["production"])
    Promotion.objects.create(to_version=v1, action="initial")
    Promotion.objects.create(from_version=v1, to_version=v2, action="promote")
    for seed, (version, truth, error) in enumerate([(v1, 1850, 2), (v1, 1900, 0), (v2, 1960, 1), (v2, 1970, 3)]):
        coin = coin_with(140, seed=600 + seed, owner=collector)
        predict(coin, version, year=truth + error, at=now - timedelta(days=8 - seed))
        verify(coin, truth, now - timedelta(days=1))
    return v1, v2


def test_the_stored_report_reads_back_as_the_same_typed_report(served):
    report = monitoring_report(weeks=4)
    assert report_from_json(report_to_json(report)) == report


def test_the_page_measures_no_photo_and_reads_its_figures_in_a_few_queries(owner_client, served, settings):
    # given figures refreshed in the background (photos measured there)
    monitoring_snapshot_refresh(weeks=12)
    measured = CoinPhotoStats.objects.count()
    assert measured == 4
    CoinPhotoStats.objects.all().delete()

    # when the owner opens the page
    with CaptureQueriesContext(connection) as queries:
        page = owner_client.get(reverse(MONITORING)).content.decode()

    # then it shows the stored figures, measured nothing, and said how old they are
    print(f"\nmonitoring page: {len(queries)} queries")
    assert 'data-mt-live-mae="v2"><strong>2.00</strong>' in page
    assert page.count("data:image/png;base64,") == 2
    assert "Figures computed less than a minute ago" in page
    assert not CoinPhotoStats.objects.exists()
    assert len(queries) <= 15, [query["sql"] for query in queries.captured_queries]


def test_old_figures_are_shown_with_their_age_and_refreshed_once(owner_client, served, settings, monkeypatch):
    settings.MONITORING_REFRESH_SECONDS = 300
    monitoring_snapshot_refresh(weeks=12)
    MonitoringSnapshot.objects.update(computed_at=timezone.now() - timedelta(hours=2))
    sent: list[int] = []
    monkeypatch.setattr(
        "training.receivers.monitoring_snapshot.monitoring_refresh_in_background",
        lambda *, weeks: sent.append(weeks) or True,
    )

    page = owner_client.get(reverse(MONITORING)).content.decode()
    again = owner_client.get(reverse(MONITORING)).content.decode()

    assert "Figures computed 2\xa0hours ago" in page and "a refresh is under way" in again
    assert sent == [12]  # the second view found the refresh pending and asked for none
    assert MonitoringSnapshot.objects.get(weeks=12).requested_at is not None


def test_a_window_never_computed_says_so_and_reloads_until_ready(owner_client, served, monkeypatch):
    monkeypatch.setattr(
        "training.receivers.monitoring_snapshot.monitoring_refresh_in_background", lambda *, weeks: True
    )
    page = owner_client.get(reverse(MONITORING) + "?weeks=26").content.decode()
    assert "The figures of the last 26 weeks are being computed in the background" in page
    assert "data-mt-autorefresh" in page
    assert not monitoring_figures_get(weeks=26).report


def test_a_refresh_asked_for_twice_runs_once_until_it_finished(served, monkeypatch):
    monkeypatch.setattr(
        "training.receivers.monitoring_snapshot.monitoring_refresh_in_background", lambda *, weeks: True
    )
    assert monitoring_refresh_request(weeks=12) is True
    assert monitoring_refresh_request(weeks=12) is False
    monitoring_snapshot_refresh(weeks=12)  # the refresh ends: a later request asks again
    assert monitoring_refresh_request(weeks=12) is True


def test_beat_refreshes_the_default_window_and_every_window_viewed(served, settings):
    task = PeriodicTask.objects.get(task="training.tasks.monitoring_refresh_task")
    assert task.enabled and task.queue == "inference" and task.interval.every == 5
    MonitoringSnapshot.objects.create(weeks=26)

    assert monitoring_refresh_task() == [12, 26]

    assert all(row.computed_at and row.report for row in MonitoringSnapshot.objects.all())
    assert monitoring_figures_get(weeks=26).report.get(2).overall.mae == 2.0


def test_without_a_broker_the_page_returns_at_once_and_a_thread_computes_the_figures(
    transactional_db, client, collector, settings
):
    # given the embedded default (Celery eager) and predictions nobody computed figures for; no open transaction
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MLFLOW_MODEL_NAME = "coin-year"
    owner = UserFactory(username="owner-thread", roles=["model_owner"], is_staff=True)
    version = ModelVersionFactory(version=1, is_production=True)
    for seed in range(3):
        coin = coin_with(140, seed=900 + seed, owner=collector)
        predict(coin, version, year=1900, at=timezone.now() - timedelta(days=1))
        verify(coin, 1901, timezone.now())
    client.force_login(owner)

    # when the owner opens the page, then it answers without the figures and says they are being computed
    first = client.get(reverse(MONITORING)).content.decode()
    assert "are being computed in the background" in first

    # and once this process's thread is done, the page shows them
    assert monitoring_refresh_wait(weeks=12, timeout=60)
    second = client.get(reverse(MONITORING)).content.decode()
    assert 'data-mt-live-mae="v1"><strong>1.00</strong>' in second and "Figures computed" in second
    assert CoinPhotoStats.objects.count() == 3


def test_the_embedded_timer_refreshes_the_monitoring_figures_after_its_sweeps(settings, monkeypatch):
    from predictions import housekeeping

    # given the timer of `make run` (no beat), whose sweeps find nothing to do
    ticks: list[str] = []
    monkeypatch.setattr("predictions.sweeps.housekeeping_run", lambda **kwargs: ticks.append("sweeps") or SweepResult(0, 0, 0))
    monkeypatch.setattr(housekeeping, "FIRST_RUN_AFTER_SECONDS", 0.01)
    monkeypatch.setattr(housekeeping, "_started", type(housekeeping._started)())
    monkeypatch.setattr(housekeeping, "_jobs", list(housekeeping._jobs))
    assert monitoring_snapshots_refresh in housekeeping._jobs  # registered by the training app
    housekeeping._jobs[housekeeping._jobs.index(monitoring_snapshots_refresh)] = lambda: ticks.append("monitoring")
    settings.COINSITE_HOUSEKEEPING_SECONDS = 60
    settings.CELERY_TASK_ALWAYS_EAGER = True

    thread = housekeeping.timer_start_if_enabled()
    deadline = time.monotonic() + 10
    while len(ticks) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    housekeeping.timer_stop()
    thread.join(timeout=5)

    assert ticks == ["sweeps", "monitoring"]
