"""Scoring registered versions the way serving does: a candidate against Production on the same coins (the learning
loop's verdict), and any two versions side by side (the owners' compare page)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from tqdm.auto import tqdm

from registry import gateway
from training.ml.labels import CoinSample
from training.ml.metrics import regression_metrics

from ..models import DatasetVersion
from ..selectors import labelled_coins
from .datasets import dataset_samples

EVAL_BATCH_SIZE = 32


def photo_bytes(photo: Path | bytes) -> bytes:
    return photo if isinstance(photo, bytes | bytearray) else Path(photo).read_bytes()


def mae_by_decade(years_true: Sequence[float], years_pred: Sequence[float]) -> dict[str, dict]:
    """{"1870": {"mae": .., "count": ..}, ...}: where in time a model errs (decades of the true year)."""
    table: dict[int, list[float]] = {}
    for truth, pred in zip(years_true, years_pred, strict=True):
        table.setdefault(int(truth) // 10 * 10, []).append(abs(float(pred) - float(truth)))
    return {str(decade): {"mae": float(np.mean(errs)), "count": len(errs)} for decade, errs in sorted(table.items())}


def model_version_evaluate(*, version: int, samples: Sequence[CoinSample], progress: bool = False) -> dict:
    """Score a registered version on labelled samples the way serving does (gateway.predictor_load + the single
    preprocessing path of training.ml.images): regression metrics, MAE by decade, interval coverage and the
    per-sample predictions (keyed by sample key)."""
    from training.ml import images, second_look  # lazy: torch loads only where a version is evaluated (a worker)

    predictor = gateway.predictor_load(version, name=settings.MLFLOW_MODEL_NAME)
    rows = []
    starts = range(0, len(samples), EVAL_BATCH_SIZE)
    if progress:
        starts = tqdm(starts, desc=f"evaluating v{version}", unit="batch")
    for start in starts:
        chunk = samples[start : start + EVAL_BATCH_SIZE]
        pairs = [(photo_bytes(s.front), photo_bytes(s.back)) for s in chunk]
        front, back = images.preprocess_batch(pairs, predictor.config, limits=settings.COINSITE_PHOTO_LIMITS)
        first = np.asarray(predictor.predict_pairs(front, back), dtype=float).reshape(len(chunk), -1)
        calibration = predictor.calibration.get("calibration") or predictor.calibration
        looked = second_look.look_again(
            predictor.predict_pairs, pairs, first, predictor.config, calibration, limits=settings.COINSITE_PHOTO_LIMITS
        )
        rows.append(looked.rows)
    output = np.concatenate(rows) if rows else np.zeros((0, 3))
    years = np.array([s.year for s in samples], dtype=float)
    predicted = output[:, 0] if len(output) else np.zeros(0)
    result: dict[str, Any] = {"version": int(version), "count": len(samples)}
    if len(samples):
        result["metrics"] = {k: float(v) for k, v in regression_metrics(years, predicted).items()}
        if output.shape[1] >= 3:
            result["metrics"]["interval_coverage"] = float(np.mean((output[:, 1] <= years) & (years <= output[:, 2])))
        result["mae_by_decade"] = mae_by_decade(years, predicted)
    else:
        result["metrics"] = {}
        result["mae_by_decade"] = {}
    result["predictions"] = {s.key or str(i): float(p) for i, (s, p) in enumerate(zip(samples, predicted, strict=True))}
    return result


def _compare_side(evaluation: dict) -> dict:
    """One column of the comparison table: flat metrics + MAE by decade (values in years, counts beside)."""
    return {
        "version": evaluation["version"],
        "count": evaluation["count"],
        **evaluation["metrics"],
        "mae_by_decade": {decade: row["mae"] for decade, row in evaluation["mae_by_decade"].items()},
        "decade_counts": {decade: row["count"] for decade, row in evaluation["mae_by_decade"].items()},
    }


def model_version_compare(
    *,
    candidate: int,
    production: int | None,
    evaluation: DatasetVersion,
    corrected_coin_ids: Sequence[int] = (),
) -> dict:
    """Candidate vs Production on the SAME held-out evaluation coins (and on the coins corrected since Production was
    trained), scored through the serving path. `better` says whether the candidate beats Production's MAE by
    PROMOTION_MARGIN_YEARS; the verdict is made from it, never from cross-validation numbers of different data.

    Shape: {candidate: {version, count, mae, mse, r2, within_5, within_10, ..., mae_by_decade: {"1870": mae}},
    production: {...} | None, corrected: {count, candidate_mae, production_mae}, better, delta_mae, margin, verdict,
    reason, evaluation_dataset, evaluation_count}.
    """
    eval_samples = dataset_samples(dataset=evaluation)
    corrected_coins = list(labelled_coins().filter(id__in=list(corrected_coin_ids)))
    corrected_samples = dataset_samples(coins=corrected_coins)
    margin = float(settings.PROMOTION_MARGIN_YEARS)
    comparison: dict[str, Any] = {
        "evaluation_dataset": evaluation.pk,
        "evaluation_hash": evaluation.content_hash,
        "evaluation_count": len(eval_samples),
        "margin": margin,
        "corrected": {"count": len(corrected_samples), "candidate_mae": None, "production_mae": None},
    }
    for role, version in (("candidate", candidate), ("production", production)):
        if version is None:
            comparison[role] = None
            continue
        comparison[role] = _compare_side(model_version_evaluate(version=version, samples=eval_samples))
        if corrected_samples:
            on_corrected = model_version_evaluate(version=version, samples=corrected_samples)
            comparison["corrected"][f"{role}_mae"] = on_corrected["metrics"].get("mae")
    cand_mae = (comparison["candidate"] or {}).get("mae")
    prod_mae = (comparison["production"] or {}).get("mae")
    if production is None:
        comparison.update(better=True, delta_mae=None, reason="first version: nothing to compare with")
    elif cand_mae is None or prod_mae is None:
        comparison.update(better=False, delta_mae=None, reason="the evaluation set is empty: no evidence, not promoted")
    else:
        delta = cand_mae - prod_mae
        better = delta <= -margin
        comparison.update(
            better=better,
            delta_mae=delta,
            reason=(
                f"candidate MAE {cand_mae:.2f} vs Production {prod_mae:.2f} on {len(eval_samples)} held-out coins: "
                + ("better" if better else "not better")
                + f" by the margin of {margin:g} years"
            ),
        )
    comparison["verdict"] = "recommended" if comparison["better"] else "rejected"
    return comparison


PAIR_CACHE_SECONDS = 7 * 24 * 3600
MOVERS = 20


def model_versions_compare(*, base: int, other: int, evaluation: DatasetVersion, movers: int = MOVERS) -> dict:
    """Any two registered versions side by side on the SAME frozen evaluation coins, scored through the serving path
    as model_version_compare scores a candidate against Production (the owners' "compare versions" page, as MLflow's
    run comparison lets one pick any two).

    Shape: Comparison's (training.schemas), `production` being the base version (A) and `candidate` the other (B),
    plus `movers`: the evaluation coins whose predicted year differs most between the two,
    [{coin_id, year, base, other, move}, ...] largest |move| first, at most `movers`.

    A version and a frozen dataset never change, so the answer for the same three ids is kept in the cache (scoring
    a few hundred coins with two versions takes seconds on 2 CPU cores; the page shows it at once the next time).
    """
    key = f"coinsite:versions-compare:{settings.MLFLOW_MODEL_NAME}:{base}:{other}:{evaluation.pk}:{movers}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    samples = dataset_samples(dataset=evaluation)
    evaluated = {role: model_version_evaluate(version=v, samples=samples) for role, v in (("a", base), ("b", other))}
    side_a, side_b = _compare_side(evaluated["a"]), _compare_side(evaluated["b"])
    mae_a, mae_b = side_a.get("mae"), side_b.get("mae")
    delta = None if mae_a is None or mae_b is None else mae_b - mae_a
    if delta is None:
        reason = "the evaluation set is empty: nothing to compare"
    else:
        word = "lower" if delta < 0 else ("higher" if delta > 0 else "the same")
        reason = (
            f"v{other} MAE {mae_b:.2f} vs v{base} {mae_a:.2f} on the same {len(samples)} held-out coins: "
            f"{abs(delta):.2f} years {word}"
            if delta
            else f"v{other} and v{base} both MAE {mae_a:.2f}"
        )
    years = {sample.key: sample.year for sample in samples}
    pred_a, pred_b = evaluated["a"]["predictions"], evaluated["b"]["predictions"]
    moved = [
        {"coin_id": int(k), "year": years[k], "base": pred_a[k], "other": pred_b[k], "move": pred_b[k] - pred_a[k]}
        for k in pred_a
        if k in pred_b and k.isdigit()
    ]
    moved.sort(key=lambda row: (-abs(row["move"]), row["coin_id"]))
    result = {
        "evaluation_dataset": evaluation.pk,
        "evaluation_hash": evaluation.content_hash,
        "evaluation_count": len(samples),
        "production": side_a,
        "candidate": side_b,
        "delta_mae": delta,
        "reason": reason,
        "movers": [row for row in moved[:movers] if row["move"] != 0],
    }
    cache.set(key, result, PAIR_CACHE_SECONDS)
    return result
