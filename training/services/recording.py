"""After the folds: record a run's result and decide (held-out answers, MLflow, registration, comparison with
Production, verdict, the mirror rows, auto-promotion). The same for a run whose folds trained one after another in
one process (runs.py) and for a fold-parallel run finalised on whichever worker finished last (folds.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from registry import gateway
from registry.gateway import PRODUCTION_ALIAS, STAGING_ALIAS
from registry.models import Promotion
from registry.services import (
    json_safe,
    model_version_alias_mirror,
    model_version_initial_production,
    model_version_mirror,
    model_version_promote,
)
from training.ml.config import TrainConfig
from training.ml.labels import CoinSample

from ..errors import error_text
from ..models import DatasetVersion, TrainingRun
from ..selectors import coins_corrected_since
from .comparison import model_version_compare
from .label_check import out_of_fold_store
from .lease import run_finish

logger = logging.getLogger(__name__)

Beat = Callable[..., None]


@dataclass
class RunDecision:
    """What the tracker block decided: the registered version, the run's metrics, the comparison and the verdict."""

    version: int
    metrics: dict
    comparison: dict
    verdict: str


def run_tracker(*, run: TrainingRun, config: TrainConfig, training_set: DatasetVersion, evaluation_set: DatasetVersion):
    """The MLflow parent run of a training run (one nested run per fold), tagged with its lineage."""
    tags = {
        "coinsite.training_run": str(run.pk),
        "coinsite.dataset": training_set.content_hash,
        "coinsite.evaluation_dataset": evaluation_set.content_hash,
        "coinsite.fine_tune": str(run.fine_tune).lower(),
        "coinsite.requested_by": getattr(run.requested_by, "username", "system"),
    }
    return gateway.tracking().TrainingTracker(config, run_name=f"training-run-{run.pk}", tags=tags)


def run_metrics(summary: dict, result) -> dict:
    """TrainingRun.metrics: the tracker's summary (folds, baseline, interval, mae_by_decade ...), the flat keys of
    the MLflow parent run at top level (mae, mae_std, baseline_mae, fold_1_mae ...) and the printable report."""
    flat = dict(summary.get("summary") or {})
    return json_safe({**flat, **summary, "beats_baseline": bool(result.beats_baseline), "report": result.summary()})


def result_record(
    tracker,
    *,
    run_id: int,
    result,
    train_samples: Sequence[CoinSample],
    training_set: DatasetVersion,
    evaluation_set: DatasetVersion,
    production: int | None,
    beat: Beat,
) -> RunDecision:
    """Inside the tracker block: keep the held-out answers, log to MLflow, register, compare, decide the verdict.

    Any exception leaves the block, which ends the MLflow run FAILED and deletes a version it registered."""
    tracking = gateway.tracking()
    name = settings.MLFLOW_MODEL_NAME
    beat(stage="keeping the held-out answers")
    out_of_fold_store(run_id=run_id, result=result, samples=train_samples)  # the curators' suspect labels
    beat(stage="logging to MLflow")
    summary = tracker.log_result(result, training_set.manifest)
    metrics = run_metrics(summary, result)
    tracker.log_model(result)
    beat(stage="registering")
    version = tracker.register(name, serve_if_first=result.beats_baseline)
    beat(stage="comparing with Production")
    if production is None:
        comparison = model_version_compare(candidate=version, production=None, evaluation=evaluation_set)
    else:
        comparison = model_version_compare(
            candidate=version,
            production=production,
            evaluation=evaluation_set,
            corrected_coin_ids=coins_corrected_since(version=production),
        )
    comparison = json_safe(comparison)
    tracking.log_evaluation(
        tracker.run_id,
        {"eval": {k: comparison.get(k) for k in ("candidate", "production")}, "corrected": comparison["corrected"]},
        {"comparison.json": comparison},
    )
    if not result.beats_baseline:  # the gate: never served automatically, not even as the first version
        comparison.update(
            better=False,
            verdict="rejected",
            reason=f"does not beat the constant baseline on its own cross-validation (MAE "
            f"{result.metrics['mae']:.2f} vs {result.baseline_metrics['mae']:.2f}): not put in Production",
        )
    verdict = TrainingRun.Verdict.RECOMMENDED if comparison["better"] else TrainingRun.Verdict.REJECTED
    if production is None and comparison["better"]:
        verdict = TrainingRun.Verdict.PROMOTED
    elif verdict == TrainingRun.Verdict.RECOMMENDED:
        tracking.set_alias(name, STAGING_ALIAS, version)
    return RunDecision(version=version, metrics=metrics, comparison=comparison, verdict=verdict)


def decision_apply(
    *,
    run_id: int,
    decision: RunDecision,
    production: int | None,
    progress: dict[str, Any],
    auto_promote: bool,
) -> TrainingRun:
    """After the tracker ended FINISHED: only now may a first version serve (the registry gave it alias `production`
    at the end of the block; a failure inside the block deleted the version instead). Then the mirror, the audit row,
    the run SUCCEEDED, and the auto-promotion of a recommended version."""
    tracking = gateway.tracking()
    name = settings.MLFLOW_MODEL_NAME
    version, verdict, metrics = decision.version, decision.verdict, decision.metrics
    run = TrainingRun.objects.select_related("requested_by").get(pk=run_id)
    first_serves = production is None and verdict == TrainingRun.Verdict.PROMOTED
    if first_serves and tracking.get_alias_version(name, PRODUCTION_ALIAS) != version:
        tracking.set_alias(name, PRODUCTION_ALIAS, version)  # no Production although versions exist (alias removed)
    with transaction.atomic():
        mirror = model_version_mirror(version=version)
        flat_metrics = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        mirror.training_run_id = run_id
        mirror.metrics = {**flat_metrics, "folds": metrics.get("folds", [])}
        mirror.save(update_fields=["training_run", "metrics"])
        if first_serves:
            model_version_initial_production(mirror=mirror, actor=run.requested_by)
        elif verdict == TrainingRun.Verdict.RECOMMENDED:
            model_version_alias_mirror(name=name, version=version, alias=STAGING_ALIAS)
    finished = run_finish(
        run_id,
        status=TrainingRun.Status.SUCCEEDED,
        metrics=metrics,
        comparison=decision.comparison,
        verdict=verdict,
        progress={**progress, "stage": "done"},
    )
    if verdict == TrainingRun.Verdict.RECOMMENDED and auto_promote:
        try:
            model_version_promote(version=version, actor=None, action=Promotion.Action.AUTO)
        except Exception as error:  # noqa: BLE001 - the run succeeded; the promotion can be done by hand
            logger.exception("auto-promotion of v%s failed", version)
            TrainingRun.objects.filter(pk=run_id).update(error=error_text(error))
        finished.refresh_from_db()
    return finished


def run_record_and_decide(
    *,
    run: TrainingRun,
    config: TrainConfig,
    training_set: DatasetVersion,
    evaluation_set: DatasetVersion,
    train_samples: Sequence[CoinSample],
    production: int | None,
    beat: Callable[..., None],
    progress: dict[str, Any],
    auto_promote: bool,
    fit: Callable[[Any], Any],
) -> TrainingRun:
    """The one path from a run's fit to its verdict, for a one-process run (runs.py) and a fold-parallel run's
    finaliser (folds.py) alike: the MLflow parent run opens, ``fit(tracker)`` gives the FitResult (training inside
    the run, or replaying the folds' learning curves into it), the result is recorded and registered, and once the
    MLflow run ended FINISHED the decision is applied (decision_apply)."""
    with run_tracker(run=run, config=config, training_set=training_set, evaluation_set=evaluation_set) as tracker:
        TrainingRun.objects.filter(pk=run.pk).update(mlflow_run_id=tracker.run_id)
        result = fit(tracker)
        decision = result_record(
            tracker,
            run_id=run.pk,
            result=result,
            train_samples=train_samples,
            training_set=training_set,
            evaluation_set=evaluation_set,
            production=production,
            beat=beat,
        )
    return decision_apply(
        run_id=run.pk, decision=decision, production=production, progress=progress, auto_promote=auto_promote
    )
