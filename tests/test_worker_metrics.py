"""A Celery worker's own metrics endpoint (coinsite/worker_metrics.py): served only when asked for, from the registry
the worker's tasks really count into, and never from one that would report zeros."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
import requests
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.concurrency.thread import TaskPool as ThreadPool
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from coinsite.worker_metrics import (
    PORT_VARIABLE,
    multiproc_folder_empty,
    pool_kind,
    worker_metrics_serve,
    worker_registry,
)
from predictions.metrics import PREDICTIONS


def predictions_counted(text: str, version: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "coinsite_predictions_total" and sample.labels.get("version") == version
    )


def test_pool_kind_reads_classes_aliases_and_paths():
    assert pool_kind(ThreadPool) == pool_kind("threads") == pool_kind("celery.concurrency.thread:TaskPool") == "thread"
    assert pool_kind(PreforkPool) == pool_kind("prefork") == pool_kind("processes") == "prefork"
    assert pool_kind("solo") == "solo"


def test_no_port_no_server():
    assert worker_metrics_serve(pool_cls=ThreadPool, environ={}) is None


def test_a_threads_worker_serves_the_predictions_its_tasks_counted():
    version = f"worker-{uuid.uuid4().hex[:8]}"
    server = worker_metrics_serve(pool_cls=ThreadPool, environ={PORT_VARIABLE: "0"})
    try:
        PREDICTIONS.labels(version=version, outcome="year").inc(2)
        port = server.server_address[1]
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.shutdown()
        server.server_close()
    assert predictions_counted(text, version) == 2


def test_a_prefork_worker_without_a_multiprocess_folder_refuses_to_start_rather_than_report_zeros():
    with pytest.raises(ImproperlyConfigured, match=f"{PORT_VARIABLE}.*PROMETHEUS_MULTIPROC_DIR"):
        worker_metrics_serve(pool_cls=PreforkPool, environ={PORT_VARIABLE: "0"})


def test_a_port_that_is_not_a_number_is_named():
    with pytest.raises(ImproperlyConfigured, match=f"{PORT_VARIABLE}='metrics'"):
        worker_metrics_serve(pool_cls=ThreadPool, environ={PORT_VARIABLE: "metrics"})


def test_a_prefork_worker_with_a_multiprocess_folder_sums_what_its_children_counted(tmp_path):
    # given: two child processes that counted predictions into the worker's multiprocess folder
    folder = tmp_path / "prometheus"
    folder.mkdir()
    child = (
        "from prometheus_client import Counter;"
        "Counter('coinsite_predictions', '', ['version', 'outcome']).labels('3', 'year').inc()"
    )
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", child], env={"PROMETHEUS_MULTIPROC_DIR": str(folder)}, check=True, timeout=60
        )

    # then: the worker's registry reports both; a restarted worker starts from an empty folder
    text = generate_latest(worker_registry(PreforkPool, multiproc_dir=str(folder))).decode()
    assert predictions_counted(text, "3") == 2
    multiproc_folder_empty(str(folder))
    assert list(folder.glob("*.db")) == []
