"""Training in the background of this server process: the embedded default's training worker.

With no broker (CELERY_TASK_ALWAYS_EAGER) a task "sent" runs inside the call that sends it, so Start training used to
hold the owner's request for the whole run (minutes), and the banner that followed said "queued" about a run that had
already ended. Here a queued run is executed in a daemon thread of the process that queued it instead: the request
returns at once, and the run's progress, heartbeat and cancellation go through its database row exactly as with a
Celery worker (training.services.runs is the same code either way).

A thread, not a child process: the run needs the Django setup, a database connection and the MLflow client, all of
which a thread has already (a forked child would inherit the parent's open connections and PyTorch's thread pools,
a spawned one would start Django again, ~2 s). PyTorch releases the GIL in its kernels, so the server keeps
answering while a run trains.

A thread has its own database connection, so it only sees rows that are committed. When the run is queued from
inside a transaction that is still open (a caller's own atomic block; a test wrapped in one), the thread could not
find it, and the run is executed synchronously as before (`training_run_execute_in_background` answers False).
"""

from __future__ import annotations

import atexit
import enum
import logging
import threading

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from ..errors import TrainingBusy
from ..models import TrainingRun
from . import runs
from .lease import mlflow_end_run_quietly, run_finish

logger = logging.getLogger(__name__)

_threads: dict[int, threading.Thread] = {}
_threads_lock = threading.Lock()


class RunDispatch(enum.StrEnum):
    """Where a run went after Start training: what the owner's banner says."""

    BACKGROUND = "background"  # training now in a thread of this server process
    WAITING = "waiting"  # queued behind the run that holds the training lock; starts here when that one ends
    WORKERS = "workers"  # queued on the broker for the training workers
    FINISHED = "finished"  # already ended (it ran synchronously, or failed at once)


def training_in_background_enabled() -> bool:
    """Whether queued runs train in this process's background: only without a broker (Celery eager), unless the
    setting TRAINING_IN_BACKGROUND is off (then eager runs block their caller, as Celery eager does)."""
    return bool(settings.CELERY_TASK_ALWAYS_EAGER) and bool(getattr(settings, "TRAINING_IN_BACKGROUND", True))


def training_run_execute_in_background(*, run_id: int) -> bool:
    """Execute the queued run `run_id` in a daemon thread of this process; True when a thread has it.

    False (nothing started) when the caller is inside an open transaction: the thread's own connection could not
    see the run yet, so the caller executes it itself.
    """
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return False
    with _threads_lock:
        existing = _threads.get(run_id)
        if existing is not None and existing.is_alive():
            return True
        thread = threading.Thread(target=_execute, args=(run_id,), name=f"training-run-{run_id}", daemon=True)
        _threads[run_id] = thread
    thread.start()
    logger.info("training run %s started in the background of this process", run_id)
    return True


def training_runs_in_background() -> list[int]:
    """Ids of the runs a thread of this process is executing now."""
    with _threads_lock:
        return sorted(run_id for run_id, thread in _threads.items() if thread.is_alive())


def training_run_background_wait(*, run_id: int, timeout: float | None = None) -> bool:
    """Wait until this process's thread for `run_id` ended (True), or `timeout` seconds passed (False)."""
    with _threads_lock:
        thread = _threads.get(run_id)
    if thread is None:
        return True
    thread.join(timeout)
    return not thread.is_alive()


def training_run_dispatch(*, run_id: int) -> tuple[RunDispatch, TrainingRun, TrainingRun | None]:
    """Where the run is now, just after it was queued: (dispatch, the run, the run holding the lock when waiting)."""
    run = TrainingRun.objects.get(pk=run_id)
    if run.status not in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING):
        return RunDispatch.FINISHED, run, None
    if not training_in_background_enabled():
        return RunDispatch.WORKERS, run, None
    holder = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).exclude(pk=run_id).first()
    if run.status == TrainingRun.Status.QUEUED and holder is not None:
        return RunDispatch.WAITING, run, holder  # its thread finds the lock taken and leaves it queued
    if run_id in training_runs_in_background() or run.status == TrainingRun.Status.RUNNING:
        return RunDispatch.BACKGROUND, run, None
    return RunDispatch.WAITING, run, None


def _execute(run_id: int) -> None:
    """The thread: the same service a Celery worker calls; a busy lock leaves the run queued (the holder hands the
    lock to the oldest queued run when it ends: lease.next_queued_run_kick)."""
    try:
        finished = runs.training_run_execute(run_id=run_id)
        logger.info("background training run %s ended: %s", run_id, finished.status)
    except TrainingBusy as busy:
        logger.info("training run %s stays queued: %s", run_id, busy)
    except Exception:  # a thread has nobody to raise to: training_run_execute already recorded what it could
        logger.exception("background training run %s failed", run_id)
    finally:
        with _threads_lock:
            if _threads.get(run_id) is threading.current_thread():
                del _threads[run_id]
        connections.close_all()  # this thread's connections only (they are per thread)


@atexit.register
def _abandoned_runs_fail() -> None:
    """The server process is exiting while a background thread trains (Ctrl-C on `make run`): the daemon thread
    dies with it, so its run is marked FAILED now instead of holding the training lock until the lease expires
    (15 minutes by default)."""
    with _threads_lock:
        abandoned = [run_id for run_id, thread in _threads.items() if thread.is_alive()]
    if not abandoned:
        return
    try:
        for run in TrainingRun.objects.filter(pk__in=abandoned, status=TrainingRun.Status.RUNNING):
            ended = run_finish(
                run.pk, status=TrainingRun.Status.FAILED, error="the server process stopped during the run"
            )
            if ended.status == TrainingRun.Status.FAILED:
                mlflow_end_run_quietly(run.mlflow_run_id, status="FAILED")
    except Exception:  # noqa: BLE001 - the process is exiting: the lease reaper is the fallback
        logger.warning("could not mark background training runs %s as failed", abandoned, exc_info=True)
