"""A Celery worker's own Prometheus endpoint: what the worker counts as it works, chiefly the predictions its
inference tasks store (coinsite_predictions_total of predictions/metrics.py).

Those counters live in the worker's memory, which the web hosts' /metrics cannot read (another process, usually
another host), so the worker answers scrapes itself: with COINSITE_WORKER_METRICS_PORT set, prometheus_client's
HTTP server runs in a thread of the worker's main process (coinsite/celery.py starts it when the worker starts).
Prometheus scrapes every web host and every worker, and `sum(coinsite_predictions_total)` over them is every
prediction stored; no prediction is counted by two processes, since each is counted where its row was written.

The server answers whoever reaches it (prometheus_client has no access rule), so it binds to
COINSITE_WORKER_METRICS_ADDR, loopback unless a private interface is named.

A worker whose tasks run in child processes (the prefork pool) counts in the children, which the main process
cannot see; it is served only in prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR set in the worker's
environment, so that every child counts into files the main process sums). Started without it, the worker refuses
to start rather than report zeros.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from django.core.exceptions import ImproperlyConfigured
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

PORT_VARIABLE = "COINSITE_WORKER_METRICS_PORT"
ADDR_VARIABLE = "COINSITE_WORKER_METRICS_ADDR"
# Celery pools whose tasks run in the worker's own process (threads, or one task at a time): their counters are in
# this process's registry.
IN_PROCESS_POOLS = frozenset({"thread", "solo", "eventlet", "gevent"})


def pool_kind(pool_cls: type | str) -> str:
    """The last part of a Celery pool class's module ("thread", "prefork", "solo" ...), or the alias given."""
    if isinstance(pool_cls, str):
        return {"threads": "thread", "processes": "prefork"}.get(pool_cls, pool_cls.rsplit(".", 1)[-1].split(":")[0])
    return pool_cls.__module__.rsplit(".", 1)[-1]


def worker_registry(pool_cls: type | str, *, multiproc_dir: str | None) -> CollectorRegistry:
    """What this worker's scrape reports: the multiprocess files when a folder is set (any pool), else this
    process's own registry, which only an in-process pool counts into."""
    if multiproc_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiproc_dir)
        return registry
    kind = pool_kind(pool_cls)
    if kind not in IN_PROCESS_POOLS:
        raise ImproperlyConfigured(
            f"{PORT_VARIABLE} is set on a worker whose tasks run in child processes (pool {kind!r}): their counts "
            "would never reach this process's metrics. Set PROMETHEUS_MULTIPROC_DIR to a folder of this host for "
            "that worker, or run it with --pool threads or solo."
        )
    return REGISTRY


def multiproc_folder_empty(folder: str) -> None:
    """Remove the files of a previous run of this worker (their pids may be reused, and their counts would be added
    to this run's); done before the pool forks its children."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


def worker_metrics_serve(*, pool_cls: type | str, environ: Mapping[str, str] | None = None) -> WSGIServer | None:
    """Start the worker's metrics server when COINSITE_WORKER_METRICS_PORT is set (0: any free port); returns the
    server (None when the variable is unset), which serves until the process exits. Raises ImproperlyConfigured for
    a pool whose counts it could not see, or a port that is not a number."""
    environ = os.environ if environ is None else environ
    port = environ.get(PORT_VARIABLE, "").strip()
    if not port:
        return None
    multiproc_dir = environ.get("PROMETHEUS_MULTIPROC_DIR") or None
    if multiproc_dir:
        multiproc_folder_empty(multiproc_dir)
    registry = worker_registry(pool_cls, multiproc_dir=multiproc_dir)
    addr = environ.get(ADDR_VARIABLE, "127.0.0.1")
    try:
        server, _thread = start_http_server(int(port), addr=addr, registry=registry)
    except ValueError as error:
        raise ImproperlyConfigured(f"{PORT_VARIABLE}={port!r} is not a port number") from error
    logger.info("worker metrics: http://%s:%s/metrics", addr, server.server_address[1])
    return server
