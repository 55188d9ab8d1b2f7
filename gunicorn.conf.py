"""gunicorn settings, read from the working directory by the Procfiles (`make run-distributed`) and `make bench` alike.

One worker process per core, each with a few threads: a request holds its process's GIL while it parses a 13 MB
JSON body, so threads alone leave the second core idle; the threads overlap photo decoding and disk writes, which
release the GIL. Each process loads the Production model once and follows the alias on its own.

Metrics: each worker counts into its own files under PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess
mode), and /metrics, answered by any one worker, sums them all (coinsite/metrics.py). The variable must be set
before any worker imports prometheus_client, hence here, in the master, before it forks; unset, it is a folder
under COINSITE_VAR_DIR. The master empties the folder when it starts (counters restart from zero with the server,
which Prometheus reads as a counter reset) and forgets each worker that exits.
"""

import os
from pathlib import Path

VAR_DIR = Path(os.environ.get("COINSITE_VAR_DIR", Path(__file__).resolve().parent / "var"))
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus"))
# The sweeps without beat (predictions/housekeeping.py): every worker runs the timer, one of them per tick. A coin
# whose inference worker died is asked for again after COINSITE_PENDING_REQUEUE_SECONDS (120): predicted within
# about 3 minutes instead of Redis's one-hour visibility timeout. Beat, where it runs, schedules the same work.
os.environ.setdefault("COINSITE_HOUSEKEEPING_SECONDS", "60")

# After the variable above: a worker inherits the master's modules, and prometheus_client picks its storage (files
# or process memory) once, when first imported.
from prometheus_client import multiprocess  # noqa: E402

from coinsite.logformat import formatter_config  # noqa: E402

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(os.cpu_count() or 2)))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = 120
graceful_timeout = 20
# gunicorn's largest (its default, 4094, refused an API call with a long query string before Django saw it). What
# is longer still gets the API's JSON 400 (coinsite/gunicorn_errors.py), not gunicorn's HTML page.
limit_request_line = 8190

# gunicorn's own lines (start, worker boots and deaths, timeouts) in the format of the site's (coinsite/settings.py
# LOGGING): time, level, logger, process; JSON lines with LOG_FORMAT=json. To stderr, like the site's. No access line
# per request, as gunicorn's default (request counts and latencies are in /metrics); GUNICORN_ACCESS_LOG=1 adds them.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"default": formatter_config(os.environ.get("LOG_FORMAT", "text"))},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {
            "level": "INFO" if os.environ.get("GUNICORN_ACCESS_LOG") == "1" else "WARNING",
            "handlers": ["console"],
            "propagate": False,
        },
    },
}


def on_starting(server) -> None:
    """Empty the metrics folder: files left by a previous server's workers (whose pids may be reused) would be summed
    into this one's counters."""
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def post_fork(server, worker) -> None:
    """In the new worker: gunicorn's own 4xx answers (request line or headers too large) in the API's JSON shape."""
    from coinsite.gunicorn_errors import json_errors_install  # lazy: imported by each worker, after the fork

    json_errors_install()


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges; its counters and histograms stay in the sums, as Prometheus expects."""
    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker) -> None:
    """Before a worker takes its first request: refuse to serve with a per-process throttle cache on several workers
    (coinsite.checks), load the Production model, and import the URLconf (the views, DRF,
    the schema generator), which Django otherwise imports during the first request: 450 ms of CPU on the 2-core
    development machine, against 820 ms for the model. Measured by `make bench` before this, with the model alone
    warmed: the first prediction after a start took 408 ms against 34 ms for the next ten (the worker that had
    answered the readiness probe had imported the URLconf; the other paid for it on its first prediction). And the
    OpenAPI schema (coinsite/schema.py), whose generation on concurrent first requests answered 500."""
    from django.core.exceptions import ImproperlyConfigured  # lazy: the config file is read before Django is set up
    from django.urls import get_resolver

    from coinsite.checks import shared_cache_refusal
    from coinsite.schema import schema_get
    from registry import serving

    # Before the model: a worker that raises here exits as "failed to boot", and gunicorn's master stops with it
    # (exit code 3) instead of serving limits each worker counts alone.
    refusal = shared_cache_refusal(workers=worker.cfg.workers)
    if refusal:
        raise ImproperlyConfigured(refusal)
    serving.warm_up()
    get_resolver().url_patterns  # noqa: B018  (a cached property: reading it imports coinsite.urls and every view)
    schema_get()  # the OpenAPI schema, generated once here rather than by the first concurrent requests
