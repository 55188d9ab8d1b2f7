"""Regression metrics in years, per fold and summarised over folds (what every run reports beside its baseline)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

METRIC_KEYS = ("mae", "mse", "rmse", "r2", "within_5", "within_10", "pred_std", "true_std")


def regression_metrics(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> dict[str, float]:
    """MAE, MSE, RMSE, R², share within ±5 and ±10 years, std of predictions and of the truth, n."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shapes differ: {y_true.shape} vs {y_pred.shape}")
    n = len(y_true)
    if n == 0:
        return {k: float("nan") for k in METRIC_KEYS} | {"n": 0.0}
    error = y_pred - y_true
    mse = float(np.mean(error**2))
    variance = float(np.var(y_true))
    return {
        "mae": float(np.mean(np.abs(error))),
        "mse": mse,
        "rmse": math.sqrt(mse),
        "r2": 1.0 - mse / variance if variance > 0 else float("nan"),
        "within_5": float(np.mean(np.abs(error) <= 5)),
        "within_10": float(np.mean(np.abs(error) <= 10)),
        "pred_std": float(np.std(y_pred)),
        "true_std": float(np.std(y_true)),
        "n": float(n),
    }


def summarise_folds(fold_metrics: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean over folds under the metric's name, and the std over folds under name + "_std"."""
    result: dict[str, float] = {}
    for key in METRIC_KEYS:
        values = np.array([m[key] for m in fold_metrics if key in m], dtype=np.float64)
        if len(values):
            result[key] = float(np.mean(values))
            result[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return result
