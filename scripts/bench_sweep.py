"""make bench-sweep: the wall time of one hyperparameter sweep on 1 training worker, then on 2, as deployed.

Real parts: PostgreSQL (a bench database, created and dropped; Optuna's study in it), Redis (db 14, flushed),
`celery worker -Q training --concurrency 1` processes with OMP_NUM_THREADS=1, MLflow and photos in var/bench-sweep.
The same coins, space and number of trials for both sweeps; each sweep's wall time is its row's started_at ->
finished_at (study, trials, plots; the best configuration is not trained: --no-train). The trials are not the same
ones (TPE with two workers asks while the other trial runs; pruning differs), so the ratio is that of two sweeps of
the same size, not of the same work. Expect ~0.5-0.65 on an idle 2-core machine; a shared one gives noisy figures.

    python scripts/bench_sweep.py [--coins 60] [--trials 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_folds import psql, stop_workers  # noqa: E402  (after the path: scripts/ is not a package root)

DATABASE = "coinsite_sweeps_bench"
BROKER = "redis://127.0.0.1:6379/14"
VAR = ROOT / "var" / "bench-sweep"
BASE = ["image_size=128", "batch_size=16", "serve_int8=false"]
SPACE = """
pruner: median
startup_trials: 2
fixed: {folds: 2, patience: 0}
params:
  lr: {type: float, low: 3.0e-4, high: 3.0e-3, log: true}
  optimizer: [adamw, sgd]
  epochs: {type: int, low: 2, high: 3}
  aug_strength: {type: float, low: 0.0, high: 1.5}
"""


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


def start_workers(count: int) -> list:
    import subprocess

    workers = []
    for index in range(count):
        log = open(VAR / f"worker-{count}-{index}.log", "ab")  # noqa: SIM115 - closed with the process
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "coinsite", "worker", "-Q", "training", "--concurrency", "1"]
                + ["--without-gossip", "--without-mingle", "--hostname", f"sweep{index}-{time.monotonic_ns()}@%h"]
                + ["--loglevel", "INFO"],
                cwd=ROOT,
                env=bench_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return workers


def timed_sweep(workers: int, trials: int, space: Path) -> tuple[float, str]:
    """A sweep of `trials` trials with `workers` training workers up: (wall seconds, its progress line)."""
    from training.models import Sweep
    from training.services.sweeps import sweep_progress, sweep_start

    processes = start_workers(workers)
    try:
        sweep = sweep_start(trials=trials, space_path=str(space), overrides=BASE, train_best=False)
        deadline = time.monotonic() + 3600
        while sweep.status in (Sweep.Status.QUEUED, Sweep.Status.RUNNING):
            if time.monotonic() > deadline:
                raise RuntimeError("the sweep did not end within an hour")
            time.sleep(2)
            sweep.refresh_from_db()
        if sweep.status != Sweep.Status.SUCCEEDED:
            raise RuntimeError(f"the sweep ended {sweep.status}: {sweep.error}")
        for trial in sweep.trials.order_by("index"):
            print(
                f"  trial {trial.number} on {trial.worker}: {trial.status} "
                f"{(trial.finished_at - trial.started_at).total_seconds():.1f} s"
            )
        return (sweep.finished_at - sweep.started_at).total_seconds(), sweep_progress(sweep).text
    finally:
        stop_workers(processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=60)
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()

    shutil.rmtree(VAR, ignore_errors=True)
    VAR.mkdir(parents=True)
    space = VAR / "tune.yaml"
    space.write_text(SPACE, encoding="utf-8")
    psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    psql(f"CREATE DATABASE {DATABASE}")
    os.environ.update(bench_env())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coinsite.settings")
    import django
    import redis

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from tqdm import tqdm

    from predictions.models import Coin
    from predictions.services import coin_create
    from training.ml import synthetic

    redis.Redis.from_url(BROKER).flushdb()
    call_command("migrate", verbosity=0)
    owner = get_user_model().objects.create_user("bench-sweep")
    for front, back, year in tqdm(
        synthetic.iter_coins(args.coins, seed=2024, size=128), total=args.coins, desc="labelled coins", unit="coin"
    ):
        coin_create(
            owner=owner, front=front, back=back, source=Coin.Source.DEMO, verified_year=year, enqueue_prediction=False
        )
    try:
        one, one_text = timed_sweep(1, args.trials, space)
        two, two_text = timed_sweep(2, args.trials, space)
    finally:
        from django.db import connections

        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    print(f"{args.coins} coins, {args.trials} trials; load average at the end {os.getloadavg()[0]:.2f}")
    print(f"1 training worker: {one:.1f} s ({one_text})")
    print(f"2 training workers: {two:.1f} s ({two_text})")
    print(f"bench-sweep: two_over_one={two / one:.3f}")


if __name__ == "__main__":
    main()
