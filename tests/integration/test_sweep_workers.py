"""A sweep on real `training` workers (PostgreSQL + Redis db 14): two workers run trials at the same time, a worker
process killed with SIGKILL mid-trial has its trial failed in Optuna and a new one run in its place, the sweep
completes, and its best configuration becomes a version compared with Production."""

from __future__ import annotations

import os
import signal

import pytest

from registry import gateway
from registry.models import ModelVersion
from tests.conftest import REDIS_HOST, REDIS_PORT, require_server
from tests.integration.conftest import wait_until
from tests.integration.test_fold_parallel_workers import training_worker_env
from tests.training.test_learning_loop import add_coins
from tests.training.test_sweeps import BASE, TINY_SPACE
from training.models import Sweep, SweepTrial, TrainingRun
from training.services.sweeps import sweep_start, sweep_study

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT = 600
TWO_EPOCHS = TINY_SPACE.replace("epochs: {type: int, low: 1, high: 2}", "epochs: {type: int, low: 2, high: 3}")


@pytest.fixture
def redis_url():
    """Redis db 14: this test's broker, apart from the other integration tests' db 15."""
    require_server("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/14"


def test_two_workers_run_trials_at_once_and_a_trial_killed_mid_way_is_failed_and_replaced(
    start_worker, model_name, collector, tmp_path
):
    # given 30 labelled coins, no Production, two training workers and a 4-trial sweep
    add_coins(collector, 30, seed=11)
    space = tmp_path / "tune.yaml"
    space.write_text(TWO_EPOCHS, encoding="utf-8")
    workers = [start_worker("training", **training_worker_env(tmp_path, f"trainer{i}")) for i in range(2)]
    logs = lambda: "\n".join(w.log()[-3000:] for w in workers)  # noqa: E731

    sweep = sweep_start(trials=4, space_path=str(space), overrides=BASE)

    # when both workers run a trial at once ...
    running = SweepTrial.objects.filter(sweep=sweep, status=SweepTrial.Status.RUNNING)
    wait_until(lambda: running.count() == 2, timeout=TIMEOUT, message=lambda: "two trials at once\n" + logs())
    side_by_side = set(running.values_list("worker", flat=True))
    assert len(side_by_side) == 2
    # ... and the process of one of them is killed with SIGKILL after its first epoch
    wait_until(lambda: running.filter(epoch__gte=1).exists(), timeout=TIMEOUT, message=lambda: "an epoch\n" + logs())
    victim = running.filter(epoch__gte=1).first()
    os.kill(int(victim.worker.rpartition(":")[2]), signal.SIGKILL)

    # then the sweep completes: the killed trial FAILED in Optuna and MLflow, its task ran a new trial
    wait_until(
        lambda: Sweep.objects.get(pk=sweep.pk).status not in (Sweep.Status.QUEUED, Sweep.Status.RUNNING),
        timeout=TIMEOUT,
        message=lambda: "the sweep to end\n" + logs(),
    )
    sweep.refresh_from_db()
    assert sweep.status == Sweep.Status.SUCCEEDED, f"{sweep.error}\n{logs()}"
    victim.refresh_from_db()
    assert victim.attempts == 2 and victim.lost_numbers == [victim.lost_numbers[0]], victim
    assert victim.status in (SweepTrial.Status.COMPLETE, SweepTrial.Status.PRUNED)
    states = {t.number: t.state.name for t in sweep_study(sweep).trials}
    assert states[victim.lost_numbers[0]] == "FAIL" and len(states) == 5
    nested = {r["name"]: r for r in gateway.tracking().sweeps.nested_runs(sweep.mlflow_run_id)}
    lost_run = nested[f"trial-{victim.lost_numbers[0]}"]
    assert lost_run["status"] == "FAILED" and lost_run["state"] == "failed"
    assert all(t.status in ("complete", "pruned") for t in sweep.trials.all())
    # ... and the best configuration trains as a normal run on the workers, compared with Production by the gate
    wait_until(
        lambda: (
            TrainingRun.objects.get(pk=sweep.training_run_id).status
            not in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING)
        ),
        timeout=TIMEOUT,
        message=lambda: "the best configuration's run\n" + logs(),
    )
    run = TrainingRun.objects.get(pk=sweep.training_run_id)
    assert run.status == TrainingRun.Status.SUCCEEDED, f"{run.error}\n{logs()}"
    assert run.origin == TrainingRun.Origin.SWEEP and run.comparison
    assert ModelVersion.objects.filter(training_run=run).exists()
    print(
        f"\ntrials side by side on {sorted(side_by_side)}; trial {victim.lost_numbers[0]} killed, replaced by "
        f"{victim.number}; {sweep.best_value:.2f} y best CV MAE"
    )
