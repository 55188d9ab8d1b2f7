"""How the predictions app's services start its tasks: plain calls, the task enqueued once the caller's transaction
commits.

The tasks call the services (the pending sweeper re-queues through them), so the services cannot import
predictions.tasks: services -> tasks -> services would be an import cycle. The task is looked up by its registered
name in the Celery app instead, the name the broker, the routes and beat know. `.delay` runs it eagerly in-process on
the embedded default (no broker), as before. This replaced a signal with one sender and one receiver that existed only
to reach tasks.py.
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction

COIN_PREDICT_TASK = "predictions.tasks.coin_predict_task"


def task(name: str):
    """The registered task `name`. Workers import every app's tasks.py at start; another process (web, a command)
    imports them through the app's autodiscovery on its first enqueue."""
    if name not in current_app.tasks:
        current_app.loader.import_default_modules()  # sends import_modules: coinsite.celery's autodiscover_tasks()
    return current_app.tasks[name]


def coin_predict(*, coin_id: int, force: bool = False) -> None:
    """Hand the coin to the `inference` queue now. The task re-reads the coin and skips one the serving version
    already scored (unless `force`), so a duplicate request costs nothing."""
    task(COIN_PREDICT_TASK).delay(coin_id, force=force)


def coin_predict_on_commit(*, coin_id: int, force: bool = False) -> None:
    """coin_predict() once the caller's transaction commits.

    `robust=True`: a broker or registry failure while enqueueing (or, on the embedded default, while the eager task
    runs) is logged and never undoes or fails an upload that is already stored; the pending sweeper retries it.
    """
    transaction.on_commit(lambda: coin_predict(coin_id=coin_id, force=force), robust=True)
