"""The schedule's periodic task form in Debian's headless Chromium at 1280 px: no "undefined" anywhere (the crontab's
words came from an empty select when Django's related-widget script fired "change" on load), the chosen crontab in
words, and the notice that no scheduler runs these tasks under the embedded default.

Screenshots: test-artifacts/admin-schedule-form-*.png (repo root, git-ignored).
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from tests.conftest import ARTIFACTS
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_schedule_form_says_no_undefined_and_that_no_scheduler_runs_it(
    transactional_db, live_server, browser, settings
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # given a crontab task and an interval task (own rows: a transactional test before may have flushed the
    # migrations' ones)
    crontab, _ = CrontabSchedule.objects.get_or_create(minute="0", hour="3", timezone="UTC")
    every_5, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    retrain = PeriodicTask.objects.create(
        name="browser: retrain", task="training.tasks.retrain_if_enough_labels_task", crontab=crontab
    )
    reaper = PeriodicTask.objects.create(
        name="browser: reap", task="training.tasks.training_run_reap_stale_task", interval=every_5
    )
    owner = UserFactory(username="owner-schedule", roles=["model_owner"], is_staff=True)

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", owner.username)
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")

    texts = {}
    for name, url in (
        ("crontab", reverse("admin:django_celery_beat_periodictask_change", args=[retrain.pk])),
        ("interval", reverse("admin:django_celery_beat_periodictask_change", args=[reaper.pk])),
        ("add", reverse("admin:django_celery_beat_periodictask_add")),
        ("list", reverse("admin:django_celery_beat_periodictask_changelist")),
    ):
        page.goto(live_server.url + url)
        page.wait_for_load_state("load")
        texts[name] = page.inner_text("body")
        page.screenshot(path=str(ARTIFACTS / f"admin-schedule-form-{name}.png"), full_page=True)

    assert not errors, errors
    for name, text in texts.items():
        assert "undefined" not in text, name
        assert "No scheduler runs these tasks" in text and "make run-distributed" in text, name
    assert "Runs: At 03:00 AM" in texts["crontab"]
    assert "Runs:" not in texts["interval"] and "Runs:" not in texts["add"]
