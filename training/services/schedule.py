"""The schedule (django-celery-beat): the scheduler's decision to retrain when enough new verified labels exist, and
whether any scheduler runs the periodic tasks at all (the schedule pages say so)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from ..models import TrainingRun
from ..selectors import new_labels_count
from .lease import training_run_reap_stale
from .runs import training_run_start

logger = logging.getLogger(__name__)


def retrain_if_enough_labels() -> TrainingRun | None:
    """The scheduler's decision: start a run when at least RETRAIN_MIN_NEW_LABELS new verified labels exist since
    the last run's data, and nothing while a run is queued or running."""
    training_run_reap_stale()
    if TrainingRun.objects.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]).exists():
        logger.info("retrain: a run is already queued or running")
        return None
    count = new_labels_count()
    if count < settings.RETRAIN_MIN_NEW_LABELS:
        logger.info("retrain: %s new labels, %s needed", count, settings.RETRAIN_MIN_NEW_LABELS)
        return None
    logger.info("retrain: %s new labels, starting a run", count)
    return training_run_start(requested_by=None, origin=TrainingRun.Origin.SCHEDULE)


@dataclass(frozen=True)
class SchedulerStatus:
    """Whether anything runs the periodic tasks of the admin's schedule, and what to start when nothing does."""

    running: bool | None  # True: beat ran a task lately; False: nothing runs them; None: cannot tell yet
    headline: str
    detail: str
    last_run_at: datetime | None = None


def scheduler_status(*, now: datetime | None = None) -> SchedulerStatus:
    """What the schedule pages say above the tasks.

    The embedded default (no CELERY_BROKER_URL, what `make run` uses) starts no Celery beat, so an enabled task
    there never runs: the page says so and names what to start. With a broker, beat writes each task's
    `last_run_at` when it sends it; when no enabled interval task was sent for two of its intervals (and 10 minutes
    more), beat is taken as not running.
    """
    now = now or timezone.now()
    tasks = PeriodicTask.objects.filter(enabled=True)
    last_run_at = max((at for at in tasks.values_list("last_run_at", flat=True) if at), default=None)
    if settings.CELERY_TASK_ALWAYS_EAGER:
        timer = settings.COINSITE_HOUSEKEEPING_SECONDS
        housekeeping = (
            f"The web process's own timer does the housekeeping (pending coins, orphan photo files) every {timer} s; "
            if timer > 0
            else ""
        )
        return SchedulerStatus(
            running=False,
            headline="No scheduler runs these tasks: this site runs on the embedded default (no CELERY_BROKER_URL), "
            "which starts no Celery beat.",
            detail=_first_upper(
                f"{housekeeping}retraining and the others run only when started by hand (Start training, "
                "`manage.py retrain`). To run them on schedule, start the site with `make run-distributed` "
                "(PostgreSQL, Redis, workers and one beat), or set CELERY_BROKER_URL and run `celery -A coinsite beat` "
                "(exactly one) beside the workers."
            ),
            last_run_at=last_run_at,
        )
    intervals = [
        task.interval.schedule.run_every.total_seconds() for task in tasks.select_related("interval") if task.interval
    ]
    window = timedelta(seconds=2 * min(intervals, default=24 * 3600) + 600)
    if last_run_at is None or now - last_run_at > window:
        since = f"since {last_run_at:%Y-%m-%d %H:%M}" if last_run_at else "yet"
        return SchedulerStatus(
            running=False if last_run_at else None,
            headline=f"Celery beat does not seem to run: no periodic task was sent {since}.",
            detail="Start exactly one `celery -A coinsite beat` (the Procfile's `beat` process) with the same "
            "settings as the workers; `make run-distributed` starts one.",
            last_run_at=last_run_at,
        )
    return SchedulerStatus(
        running=True,
        headline="Celery beat runs these tasks.",
        detail=f"The last one was sent at {timezone.localtime(last_run_at):%Y-%m-%d %H:%M}.",
        last_run_at=last_run_at,
    )


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]
