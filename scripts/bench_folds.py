"""make bench-folds: the wall time of one K-fold training run on 1 training worker, then on 2, as deployed.

Real parts: PostgreSQL (a bench database, created and dropped), Redis (db 9, flushed), `celery worker -Q training
--concurrency 1` processes with OMP_NUM_THREADS=1 (one torch thread each), MLflow and photos in var/bench-folds.
The same labelled coins and config for both runs; each run's wall time is its row's started_at -> finished_at
(coordinator, folds, finaliser: registration, ONNX export, comparison), so the serial parts count. The 1-worker run
goes first, with no Production to compare against; the 2-worker run also compares with the version the first one
put in Production, so the ratio errs against fold-parallel. Target (issue 14): 2 workers <= 0.65 x 1 worker.

    python scripts/bench_folds.py [--coins 320] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 0.65
DATABASE = "coinsite_bench_folds"
BROKER = "redis://127.0.0.1:6379/9"
VAR = ROOT / "var" / "bench-folds"
DEFAULT_SET = ["folds=4", "epochs=6", "image_size=128", "batch_size=16", "patience=0", "serve_int8=false"]


def bench_env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        "CELERY_BROKER_URL": BROKER,
        "COINSITE_VAR_DIR": str(VAR),
        "DJANGO_DEBUG": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": "1",
    }


def psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", sql], check=True)


def start_workers(count: int, logs: Path) -> list[subprocess.Popen]:
    workers = []
    for index in range(count):
        log = open(logs / f"worker-{count}-{index}.log", "ab")  # noqa: SIM115 - closed with the process
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "coinsite", "worker", "-Q", "training", "--concurrency", "1"]
                + ["--max-tasks-per-child", "1"]
                + ["--without-gossip", "--without-mingle", "--hostname", f"bench{index}-{time.monotonic_ns()}@%h"]
                + ["--loglevel", "INFO"],
                cwd=ROOT,
                env=bench_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def timed_run(workers: int, overrides: list[str], logs: Path) -> float:
    """Start a run with `workers` training workers up; its wall seconds (started_at -> finished_at)."""
    from django.utils import timezone
    from tqdm import tqdm

    from training.models import TrainingRun
    from training.services.runs import training_run_start

    processes = start_workers(workers, logs)
    try:
        run = training_run_start(overrides=overrides)
        total = int(run.config["folds"]) * int(run.config["epochs"])
        with tqdm(total=total, desc=f"{workers} worker(s)", unit="fold-epoch") as bar:
            while run.status in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING):
                time.sleep(1)
                run.refresh_from_db()
                bar.n = min(total, int(run.progress.get("epochs_done") or 0))
                bar.set_postfix_str(str(run.progress.get("stage", "")))
                bar.refresh()
                if run.status == TrainingRun.Status.QUEUED and (timezone.now() - run.created_at).total_seconds() > 600:
                    raise RuntimeError("no training worker took the run in 10 minutes")
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise RuntimeError(f"the run ended {run.status}: {run.error}")
        folds = list(run.folds.order_by("index").values_list("worker", "started_at", "finished_at"))
        for worker, started, finished in folds:
            print(f"  fold on {worker}: {(finished - started).total_seconds():.1f} s")
        return (run.finished_at - run.started_at).total_seconds()
    finally:
        stop_workers(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=320)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    overrides = [*DEFAULT_SET, *args.set]

    shutil.rmtree(VAR, ignore_errors=True)
    VAR.mkdir(parents=True)
    psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    psql(f"CREATE DATABASE {DATABASE}")
    os.environ.update(bench_env())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coinsite.settings")
    import django
    import redis

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from predictions.models import Coin
    from predictions.services import coin_create
    from training.ml import synthetic

    redis.Redis.from_url(BROKER).flushdb()
    call_command("migrate", verbosity=0)
    owner = get_user_model().objects.create_user("bench-folds")
    from tqdm import tqdm

    coins = synthetic.iter_coins(args.coins, seed=2024, size=192)
    for front, back, year in tqdm(coins, total=args.coins, desc="labelled coins", unit="coin"):
        coin_create(owner=owner, front=front, back=back, source=Coin.Source.DEMO, verified_year=year)
    try:
        one = timed_run(1, overrides, VAR)
        two = timed_run(2, overrides, VAR)
    finally:
        from django.db import connections

        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    load = os.getloadavg()[0]
    print(f"config: {' '.join(overrides)}; {args.coins} coins; load average before the end {load:.2f}")
    print(f"1 training worker: {one:.1f} s; 2 training workers: {two:.1f} s (1 torch thread each)")
    verdict = "OK" if two / one <= TARGET_RATIO else "ABOVE TARGET"
    print(f"bench-folds: two_over_one={two / one:.3f} (target <= {TARGET_RATIO}) {verdict}")


if __name__ == "__main__":
    main()
