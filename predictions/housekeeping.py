"""The embedded default's own timer for the sweeps: it runs no beat, so `make run` turns this on.

With COINSITE_HOUSEKEEPING_SECONDS > 0 (the Makefile's `run` sets it) and Celery eager, a daemon thread runs
predictions.sweeps.housekeeping_run() shortly after start-up and then every interval: a coin accepted just before
the process died gets its prediction after the restart, and files a killed request left behind are removed once
they are older than the grace period. With a broker, beat schedules the same work and this stays off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

FIRST_RUN_AFTER_SECONDS = 10.0
_started = threading.Event()
_stop = threading.Event()
# Work of the apps above this one that beat would schedule too (training: the monitoring figures), run after the
# sweeps on every tick; registered from their AppConfig.ready(), since this layer may not import them.
_jobs: list[Callable[[], object]] = []


def timer_job_add(job: Callable[[], object]) -> None:
    """Run `job` on every tick of the timer, after the sweeps (once per job, however often it is added)."""
    if job not in _jobs:
        _jobs.append(job)


def timer_stop() -> None:
    """Stop the timer thread at its next wake-up (tests; a process that shuts down just exits)."""
    _stop.set()


def timer_start_if_enabled() -> threading.Thread | None:
    """Start the timer thread once per process, when enabled and no beat exists (Celery eager)."""
    interval = settings.COINSITE_HOUSEKEEPING_SECONDS
    if interval <= 0 or not settings.CELERY_TASK_ALWAYS_EAGER or _started.is_set():
        return None
    _started.set()
    _stop.clear()
    thread = threading.Thread(target=_loop, args=(float(interval),), name="housekeeping", daemon=True)
    thread.start()
    logger.info("housekeeping timer: sweeps every %d s (no beat on the embedded default)", interval)
    return thread


def _loop(interval: float) -> None:
    from .sweeps import housekeeping_run  # lazy: started from AppConfig.ready(), before models may be imported

    delay = min(FIRST_RUN_AFTER_SECONDS, interval)
    while not _stop.wait(delay):
        delay = interval
        try:
            result = housekeeping_run()
            if result.orphans_removed or result.pending_requeued:
                logger.info("housekeeping: %s", result)
        except Exception:  # a locked database, a full disk: log it and try again next time
            logger.exception("housekeeping sweep failed; retrying in %d s", interval)
        for job in list(_jobs):
            try:
                job()
            except Exception:
                logger.exception(
                    "housekeeping job %s failed; retrying in %d s", getattr(job, "__name__", job), interval
                )
        close_old_connections()
