"""gunicorn settings, read from the working directory by `make run-distributed` (Procfile) and `make bench` alike.

One worker process per core, each with a few threads: a request holds its process's GIL while it parses a 13 MB
JSON body, so threads alone leave the second core idle; the threads overlap photo decoding and disk writes, which
release the GIL. Each process loads the Production model once and follows the alias on its own.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(os.cpu_count() or 2)))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = 120
graceful_timeout = 20


def post_worker_init(worker) -> None:
    """Load the Production model in each worker as it starts: the first request must not wait for it."""
    from registry import serving  # lazy: the config file is read before Django is set up

    serving.warm_up()
