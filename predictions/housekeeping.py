"""The housekeeping timer: the sweeps without beat, run by whichever process holds this tick's lease.

With COINSITE_HOUSEKEEPING_SECONDS > 0 (`make run` sets 300; gunicorn.conf.py gives its workers 60 unless set), a
daemon thread runs predictions.sweeps.housekeeping_run() shortly after start-up and then every interval: coins still
pending after COINSITE_PENDING_REQUEUE_SECONDS (a lost message, an inference worker killed with its task unacknowledged,
which Redis would give back only after its one-hour visibility timeout) are asked for again, and files a killed request
left behind are removed once they are older than the grace period. With a broker the timer runs too, for the pending
coins only: beat is then not needed for them (it schedules the same, idempotent work when it runs).

One owner per tick: every gunicorn worker (and host) runs a timer, so each tick is first claimed in the shared cache
(`tick_claim`: cache.add with an expiry, atomic on every backend). Measured before: two workers each predicted the same
pending coin (2 Prediction rows). The claim expires by itself, so a process that dies never keeps the others from the
work; production refuses several workers on a per-process cache (coinsite.checks), where the claim would be per process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connections

logger = logging.getLogger(__name__)

FIRST_RUN_AFTER_SECONDS = 10.0
TICK_KEY = "housekeeping:tick"
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


def tick_claim(interval: float, *, owner: str | None = None) -> bool:
    """Claim the housekeeping of the next `interval` seconds for this process; False when another process has it.
    The claim lapses a little before the interval ends, so the next tick of any process may take over."""
    owner = owner or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    return cache.add(TICK_KEY, owner, timeout=max(1, int(interval * 0.9)))


def timer_start_if_enabled() -> threading.Thread | None:
    """Start the timer thread once per process, when enabled (broker or not: each tick has one owner)."""
    interval = settings.COINSITE_HOUSEKEEPING_SECONDS
    if interval <= 0 or _started.is_set():
        return None
    _started.set()
    _stop.clear()
    thread = threading.Thread(target=_loop, args=(float(interval),), name="housekeeping", daemon=True)
    thread.start()
    logger.info("housekeeping timer: sweeps every %d s, one process per tick", interval)
    return thread


def housekeeping_tick(interval: float) -> bool:
    """One tick, when this process wins the tick's claim; returns whether it ran. Without a broker: the sweeps and
    the registered jobs, in-process. With one: only the pending coins are asked for again (a query on the pending
    index and a message each); the orphan sweep, a walk over every photo folder, stays on the `housekeeping` queue
    that beat (or `manage.py sweep`) feeds, never in a web worker."""
    from .services import coins_requeue_pending  # lazy: started from AppConfig.ready(), before models may be imported
    from .sweeps import housekeeping_run  # lazy: as above

    if not tick_claim(interval):
        return False
    age = settings.COINSITE_PENDING_REQUEUE_SECONDS
    try:
        if not settings.CELERY_TASK_ALWAYS_EAGER:
            requeued = coins_requeue_pending(older_than_seconds=age)
            if requeued:
                logger.info("housekeeping: %d pending coin(s) asked for again", requeued)
            return True
        result = housekeeping_run(pending_after_seconds=age)
        if result.orphans_removed or result.pending_requeued:
            logger.info("housekeeping: %s", result)
    except Exception:  # a locked database, a full disk: log it and try again next time
        logger.exception("housekeeping sweep failed; retrying in %d s", interval)
    for job in list(_jobs):
        try:
            job()
        except Exception:
            logger.exception("housekeeping job %s failed; retrying in %d s", getattr(job, "__name__", job), interval)
    return True


def _loop(interval: float) -> None:
    delay = min(FIRST_RUN_AFTER_SECONDS, interval)
    while not _stop.wait(delay):
        delay = interval
        try:
            housekeeping_tick(interval)
        except Exception:  # the cache is down: try again next time
            logger.exception("housekeeping tick failed; retrying in %d s", interval)
        close_old_connections()
    connections.close_all()  # this thread's own connections: a stopped timer leaves no session open
