"""The Celery app: queues `inference` and `training`, safe redelivery when a worker dies.

Without CELERY_BROKER_URL the settings make every task run eagerly in-process (the embedded default).
"""

import logging.config
import os

from celery import Celery, signals
from django.conf import settings
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coinsite.settings")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

app = Celery("coinsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("inference"), Queue("training"), Queue("housekeeping"), Queue("celery"))
app.conf.task_default_queue = "celery"
app.conf.task_routes = {
    # The orphan sweep walks the whole photo store (42 s at 1M coins before it went folder by folder): on a queue of
    # its own (the Procfile's `housekeeping` worker), never between the inference worker's predictions.
    "predictions.tasks.photo_orphans_sweep_task": {"queue": "housekeeping"},
    "predictions.tasks.*": {"queue": "inference"},
    "training.tasks.*": {"queue": "training"},
}
# A task is acknowledged only after it ran: a worker killed mid-task (SIGKILL, OOM, lost host) gives it back to the
# broker, and another worker runs it again. Tasks re-read state by id, so a second run is harmless.
app.conf.task_acks_late = True
app.conf.task_reject_on_worker_lost = True
app.conf.worker_prefetch_multiplier = 1
app.autodiscover_tasks()


@signals.setup_logging.connect
def logging_from_django_settings(loglevel: int | str | None = None, **kwargs) -> None:
    """Workers log with the settings' LOGGING (time, level, logger; JSON lines with LOG_FORMAT=json) instead of
    Celery's own format, which has no logger name; `--loglevel` still sets the root level. Connecting this signal
    is Celery's documented way to keep it from configuring logging itself."""
    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


@signals.worker_init.connect
def worker_metrics_start(sender=None, **kwargs) -> None:
    """A worker serves its own counters (the predictions its tasks store) on COINSITE_WORKER_METRICS_PORT when set:
    the web hosts' /metrics cannot see another process's memory (coinsite/worker_metrics.py)."""
    from coinsite.worker_metrics import worker_metrics_serve  # lazy: only a starting worker needs the server

    worker_metrics_serve(pool_cls=getattr(sender, "pool_cls", "solo"))
