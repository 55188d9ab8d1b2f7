"""The schedule pages say whether a scheduler runs the periodic tasks (the embedded default starts none), and every
training run records what started it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from tests.factories import CoinFactory
from training.models import TrainingRun
from training.services.runs import training_run_start
from training.services.schedule import retrain_if_enough_labels, scheduler_status

pytestmark = pytest.mark.django_db

SCHEDULE = "admin:django_celery_beat_periodictask_changelist"


def test_the_embedded_default_says_no_scheduler_runs_the_tasks_and_what_to_start(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.COINSITE_HOUSEKEEPING_SECONDS = 300

    status = scheduler_status()

    assert status.running is False
    assert "No scheduler runs these tasks" in status.headline
    assert "make run-distributed" in status.detail and "celery -A coinsite beat" in status.detail
    assert "every 300 s" in status.detail  # what the web process's own timer does run


def test_with_a_broker_beat_counts_as_running_while_it_sends_tasks(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    now = timezone.now()
    PeriodicTask.objects.all().update(last_run_at=None)
    assert scheduler_status(now=now).running is None  # nothing sent yet: cannot tell

    PeriodicTask.objects.filter(name="Reap stale training runs").update(last_run_at=now - timedelta(minutes=4))
    assert scheduler_status(now=now).running is True

    stopped = scheduler_status(now=now + timedelta(hours=2))
    assert stopped.running is False and "does not seem to run" in stopped.headline
    assert "celery -A coinsite beat" in stopped.detail


def test_schedule_list_and_form_say_no_scheduler_runs_them_under_the_embedded_default(client, model_owner, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    client.force_login(model_owner)
    task = PeriodicTask.objects.get(task="training.tasks.retrain_if_enough_labels_task")

    listing = client.get(reverse(SCHEDULE)).content.decode()
    form = client.get(reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])).content.decode()

    for page in (listing, form):
        assert 'id="mt-scheduler-status"' in page and "No scheduler runs these tasks" in page
        assert "make run-distributed" in page


def test_a_run_records_who_or_what_started_it(model_owner, settings, django_capture_on_commit_callbacks):
    settings.RETRAIN_MIN_NEW_LABELS = 1
    with django_capture_on_commit_callbacks(execute=False):
        by_owner = training_run_start(requested_by=model_owner)
        by_command = training_run_start(enqueue=False)
        by_bootstrap = training_run_start(enqueue=False, origin=TrainingRun.Origin.BOOTSTRAP)
    TrainingRun.objects.all().update(status=TrainingRun.Status.SUCCEEDED)
    CoinFactory(verified_year=1901, verified_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=False):
        by_schedule = retrain_if_enough_labels()

    assert [run.origin for run in (by_owner, by_command, by_bootstrap, by_schedule)] == [
        "owner",
        "command",
        "bootstrap",
        "schedule",
    ]


def test_the_runs_list_says_what_started_each_run_and_never_guesses_schedule(client, model_owner):
    TrainingRun.objects.create(origin=TrainingRun.Origin.BOOTSTRAP, status=TrainingRun.Status.SUCCEEDED)
    TrainingRun.objects.create(origin="", status=TrainingRun.Status.SUCCEEDED)  # queued before origins were kept
    TrainingRun.objects.create(
        origin=TrainingRun.Origin.OWNER, requested_by=model_owner, status=TrainingRun.Status.SUCCEEDED
    )
    client.force_login(model_owner)

    page = client.get(reverse("admin:training_trainingrun_changelist")).content.decode()

    assert "by first-run set-up" in page and "by not recorded" in page and f"by {model_owner.username}" in page
    assert "by schedule" not in page
