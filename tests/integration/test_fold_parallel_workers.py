"""Fold-parallel retraining on real `training` workers (Redis + PostgreSQL): two workers share the four folds of a run,
a worker process killed with SIGKILL in the middle of a fold is replaced and that fold trained again, and Production
changes only when the finaliser has compared the result, at the very end."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.conf import settings

from registry import gateway
from registry.models import ModelVersion
from tests.integration.conftest import wait_until
from tests.training.test_learning_loop import TINY, add_coins
from training.models import TrainingFold, TrainingRun
from training.services.runs import training_run_start

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FOUR_FOLDS = [*TINY, "folds=4", "epochs=3"]
RUN_TIMEOUT = 420


def training_worker_env(tmp_path, name: str) -> dict[str, str]:
    """A training host: the same database, broker, MLflow store and photo storage, its own var folder, one torch
    thread (two such workers on this 2-core machine)."""
    return {
        "MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI,
        "MLFLOW_ARTIFACT_ROOT": settings.MLFLOW_ARTIFACT_ROOT,
        "MLFLOW_MODEL_NAME": settings.MLFLOW_MODEL_NAME,
        "EVALUATION_SHARE": str(settings.EVALUATION_SHARE),
        "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "COINSITE_VAR_DIR": str(tmp_path / f"{name}-var"),
        "OMP_NUM_THREADS": "1",
    }


def production() -> int | None:
    """What Production is in the shared MLflow registry (the gateway configures this process's client for it)."""
    return gateway.tracking().get_alias_version(settings.MLFLOW_MODEL_NAME, "production")


def test_two_workers_share_the_folds_and_a_fold_killed_mid_way_is_trained_again(
    start_worker, model_name, collector, tmp_path
):
    # given 40 labelled coins, no Production yet, and two training workers
    add_coins(collector, 40, seed=11)
    workers = [start_worker("training", **training_worker_env(tmp_path, f"trainer{i}")) for i in range(2)]

    # when a 4-fold run is started (queued on the broker after commit) ...
    run = training_run_start(overrides=FOUR_FOLDS)
    # ... both workers train a fold at the same time (min(workers, folds) = 2) ...
    wait_until(
        lambda: TrainingFold.objects.filter(run=run, status="running").count() == 2,
        timeout=RUN_TIMEOUT,
        message=lambda: "two folds training side by side\n" + "\n".join(w.log()[-3000:] for w in workers),
    )
    side_by_side = set(TrainingFold.objects.filter(run=run, status="running").values_list("worker", flat=True))
    assert len(side_by_side) == 2
    wait_until(
        lambda: TrainingFold.objects.filter(run=run, status="running", epoch__gte=1).exists(),
        timeout=RUN_TIMEOUT,
        message=lambda: "a fold one epoch into training\n" + "\n".join(w.log()[-3000:] for w in workers),
    )
    # ... and the process training a fold is killed with SIGKILL after its first epoch
    victim = TrainingFold.objects.filter(run=run, status="running", epoch__gte=1).first()
    host, _, pid = victim.worker.rpartition(":")
    os.kill(int(pid), signal.SIGKILL)
    killed_at = time.monotonic()

    # then, while folds train (before the finaliser claimed the run), Production never changes; the killed fold is
    # trained again and the run succeeds
    seen_production_while_training = set()
    while time.monotonic() - killed_at < RUN_TIMEOUT:
        serving = production()
        run.refresh_from_db()
        if run.status not in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING):
            break
        if run.finalising_at is None:
            seen_production_while_training.add(serving)
        time.sleep(0.5)
    logs = "\n".join(w.log()[-4000:] for w in workers)
    assert run.status == TrainingRun.Status.SUCCEEDED, f"{run.status}: {run.error}\n{logs}"
    assert seen_production_while_training == {None}, "Production changed before the folds were combined"
    victim.refresh_from_db()
    assert victim.status == TrainingFold.Status.DONE and victim.attempts == 2, victim
    assert victim.worker != f"{host}:{pid}"
    folds = list(run.folds.order_by("index"))
    assert [f.status for f in folds] == ["done"] * 4 and sum(f.attempts for f in folds) == 5
    print(f"\nfolds trained side by side by {sorted(side_by_side)}; fold {victim.index + 1} killed and trained again")
    assert run.verdict == TrainingRun.Verdict.PROMOTED
    assert production() == ModelVersion.objects.get(training_run=run).version
    assert len(run.metrics["folds"]) == 4
    assert "WorkerLostError" in logs or "worker lost" in logs.lower() or "SIGKILL" in logs, logs
