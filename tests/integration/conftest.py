"""Real Celery worker processes on Redis, against the test run's PostgreSQL database."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.integration.s3 import s3_endpoint, s3_photos  # noqa: F401  (fixtures for the S3 tests)

ROOT = Path(__file__).resolve().parents[2]


def database_url_of_test_db() -> str:
    from django.db import connection

    s = connection.settings_dict
    return f"postgres://{s['USER'] or 'postgres'}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def deployed_worker_options(queues: str) -> list[str]:
    """The pool and concurrency the Procfile gives the worker of `queues`, so tests run workers as deployed
    (the `inference` worker runs threads: concurrent tasks share batched forward passes); prefork with one
    process for anything else."""
    for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        name, _, command = line.partition(":")
        args = shlex.split(command)
        if name.strip() == queues and "worker" in args:
            options = []
            for flag in ("--pool", "--concurrency"):
                if flag in args:
                    options += [flag, args[args.index(flag) + 1]]
            return options
    return ["--pool", "prefork", "--concurrency", "1"]


class WorkerProcess:
    """A `celery worker` subprocess of this project, started and stopped by a test."""

    def __init__(self, *, queues: str, broker_url: str, extra_env: dict[str, str] | None = None, log_path: Path):
        self.queues, self.broker_url, self.log_path = queues, broker_url, log_path
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": database_url_of_test_db(),
                "CELERY_BROKER_URL": self.broker_url,
                "MLFLOW_DISABLE_TELEMETRY": "true",
                **self.extra_env,
            }
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "coinsite",
                "worker",
                "-Q",
                self.queues,
                *deployed_worker_options(self.queues),
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
                "--hostname",
                f"test-{self.queues}-{time.monotonic_ns()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def celery_broker(redis_url, settings):
    """Point this process's Celery app at Redis (not eager) for the test, with empty queues."""
    from coinsite.celery import app

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    previous = {k: app.conf[k] for k in ("broker_url", "task_always_eager")}
    forget_connections(app)
    app.conf.update(broker_url=redis_url, task_always_eager=False)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    yield redis_url
    forget_connections(app)
    app.conf.update(previous)
    client.flushdb()


def forget_connections(app) -> None:
    """Drop the app's cached connection and producer pools so the next send uses the current broker_url."""
    from kombu import pools

    pools.reset()  # kombu keeps process-wide producer pools per connection: start clean
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def start_worker(celery_broker, tmp_path, transactional_db, postgres_only):
    """start_worker(queues) -> WorkerProcess; every worker is stopped at the end of the test."""
    workers: list[WorkerProcess] = []

    def start(queues: str = "inference,training", **extra_env: str) -> WorkerProcess:
        worker = WorkerProcess(
            queues=queues,
            broker_url=celery_broker,
            extra_env=extra_env,
            log_path=tmp_path / f"worker{len(workers)}.log",
        ).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_until(
    predicate, *, timeout: float, interval: float = 0.2, message: str | Callable[[], str] = "condition"
) -> None:
    """Poll until `predicate()`; on timeout fail with `message`, called then when it is a callable (a worker's log
    read at the moment of failure, not before the wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    text = message() if callable(message) else message
    raise AssertionError(f"timed out after {timeout}s waiting for {text}")
