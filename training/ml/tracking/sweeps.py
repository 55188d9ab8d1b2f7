"""Tracking a hyperparameter sweep in MLflow: the sweep is a parent run, every trial a nested run with its
parameters, its per-epoch metrics and its state (complete, pruned, failed) as the tag ``coinsite.trial_state``.

The trials of one sweep run in different processes (one Celery task each), so nothing here is kept in memory between
calls: every function takes run ids, as the database rows of the sweep keep them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlflow.entities import Param, RunTag

from training.ml.tracking import store
from training.ml.tracking.artifacts import log_artifact_values
from training.ml.tracking.runs import log_metrics
from training.ml.tracking.values import flatten_metrics

TRIAL_STATE_TAG = "coinsite.trial_state"
# An Optuna trial state -> the MLflow run status its nested run ends with.
RUN_STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}


def _params(values: Mapping[str, Any]) -> list[Param]:
    return [Param(str(k), str(v)[:6000]) for k, v in sorted(values.items())]


def sweep_run_start(*, name: str, params: Mapping[str, Any], tags: Mapping[str, Any]) -> str:
    """The sweep's parent run (RUNNING until sweep_run_end); returns its id."""
    client = store.client()
    run = client.create_run(
        store.experiment_id(None),
        run_name=name,
        tags={"mlflow.source.type": "JOB", "coinsite.kind": "sweep", **{str(k): str(v) for k, v in tags.items()}},
    )
    client.log_batch(run.info.run_id, params=_params(params))
    return run.info.run_id


def trial_run_start(*, parent_run_id: str, number: int, params: Mapping[str, Any], tags: Mapping[str, Any]) -> str:
    """A trial's nested run under the sweep's parent, with the trial's parameters; returns its id."""
    client = store.client()
    parent = client.get_run(parent_run_id)
    run = client.create_run(
        parent.info.experiment_id,
        run_name=f"trial-{number}",
        tags={
            "mlflow.parentRunId": parent_run_id,
            "coinsite.kind": "trial",
            "coinsite.trial": str(number),
            TRIAL_STATE_TAG: "running",
            **{str(k): str(v) for k, v in tags.items()},
        },
    )
    client.log_batch(run.info.run_id, params=_params(params))
    return run.info.run_id


def trial_run_epoch(run_id: str, metrics: Mapping[str, Any], *, step: int) -> None:
    """One epoch of one fold of the trial (step = fold * max_epochs + epoch, as the pruner sees it)."""
    log_metrics(store.client(), run_id, flatten_metrics(metrics), step=step)


def trial_run_end(run_id: str, *, state: str, value: float | None = None, error: str = "") -> None:
    """End a trial's nested run with its state: complete (FINISHED), pruned (KILLED) or failed (FAILED). Safe to call
    for a run already ended (a reaped trial)."""
    client = store.client()
    tags = [RunTag(TRIAL_STATE_TAG, state)]
    if error:
        tags.append(RunTag("error", error[:5000]))
    client.log_batch(run_id, tags=tags)
    if value is not None:
        log_metrics(client, run_id, {"cv_mae": float(value)})
    client.set_terminated(run_id, RUN_STATUS.get(state, "FAILED"))


def sweep_run_end(
    run_id: str,
    *,
    status: str,
    metrics: Mapping[str, Any] | None = None,
    artifacts: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> None:
    """End the parent: its summary metrics (best value, trials by state), Optuna's plots and the trials table as
    artifacts, then the status (FINISHED, FAILED, KILLED)."""
    client = store.client()
    if tags:
        client.log_batch(run_id, tags=[RunTag(str(k), str(v)[:5000]) for k, v in tags.items()])
    if metrics:
        log_metrics(client, run_id, flatten_metrics(metrics))
    if artifacts:
        log_artifact_values(client, run_id, artifacts)
    client.set_terminated(run_id, status)


def nested_runs(parent_run_id: str) -> list[dict[str, Any]]:
    """The parent's nested runs: id, name, status, trial state tag (for tests and the admin's cross-check)."""
    client = store.client()
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=5000
    )
    return [
        {
            "run_id": r.info.run_id,
            "name": r.info.run_name,
            "status": r.info.status,
            "state": r.data.tags.get(TRIAL_STATE_TAG, ""),
            "params": dict(r.data.params),
            "metrics": dict(r.data.metrics),
        }
        for r in runs
    ]
