"""The regression ensemble's interval, calibrated on coins no fold model saw (the date reader's comes from its year
distribution instead: see reader_calibration.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class IntervalCalibration:
    """halfwidth(x) = sqrt(base² + spread_coef * s(x)²), s(x) the std (ddof=1) of the K fold predictions at x.

    Why: on a fresh coin a single fold model errs by r_k = b + v_k and the ensemble by e = b + mean(v_k), v_k being
    the part in which the fold models disagree; so the ensemble is more accurate than any out-of-fold model, and
    the out-of-fold quantile as it is over-covers (measured: 85-87% for a stated 80%). What averaging shrinks must
    be measured on coins that NO fold model trained on (on training coins the models agree too well): the
    calibration holdout. There Var(e)/Var(r) is taken as a ratio on the same coins, which is steady even on a few
    dozen coins, and applied to the n out-of-fold residuals: Var(e) = Var(r_oof) * E[e²]/E[r²] (holdout).
    Without labelled holdout coins, Var(e) = Var(r_oof) - (1 - 1/K) E[s²] (spread of the fold models).
    The ensemble's errors are close to normal (averaging tames single-model blunders), so the halfwidth is
    shape * sqrt(Var(e)) with shape = the normal quantile of the level, or the out-of-fold one if larger.

    Per-coin scaling by the spread is optional (config.interval_spread_weight, 0 by default): fold disagreement is
    dominated by occasional single-model blunders, and scaling every interval by it dropped the coverage of fresh
    coins to 72% in one run; a constant halfwidth held 79-81% in every run measured.
    """

    level: float
    base: float
    spread_coef: float
    shape: float
    oof_rms: float
    mean_spread_var: float
    spread_source: str  # "holdout" (coins no fold model saw) or "oof" (training coins: interval on the wide side)
    ensemble_var: float = 0.0  # estimated Var(e) of the ensemble on fresh coins, years²
    oof_shape: float = 0.0  # level-quantile of |out-of-fold residual| / their rms
    # date reader only (head "reader"): its interval comes from the year distribution, not from residuals
    temperature: float = 1.0  # divides the fold models' log-probabilities (fitted by NLL on unseen coins)
    coin_threshold: float = 0.5  # below: "not a coin"
    read_threshold: float = 0.0  # below (mass within a year of the answer): "unreadable"


def calibrate_interval(
    oof_residuals: np.ndarray,
    fresh_fold_predictions: np.ndarray,
    *,
    level: float,
    fresh_truth: np.ndarray | None = None,
    spread_source: str = "holdout",
    spread_weight: float = 0.0,
) -> IntervalCalibration:
    """Fit the ensemble's interval from out-of-fold residuals and the fold models' predictions on unseen coins.

    fresh_fold_predictions: (K, M) years from each fold model on the same M coins; fresh_truth: their true years
    (when known, Var(e)/Var(r) is measured on them; else it follows from the spread alone). spread_weight in [0, 1]
    moves that share of the ensemble's variance from the constant part to the per-coin spread term.
    """
    residuals = np.asarray(oof_residuals, dtype=np.float64)
    predictions = np.asarray(fresh_fold_predictions, dtype=np.float64)
    k = predictions.shape[0]
    n = len(residuals)
    if n == 0:
        raise ValueError("no out-of-fold residuals to calibrate on")
    if k < 2:
        raise ValueError("the interval needs at least two fold models")
    rms2 = float(np.mean(residuals**2))
    # finite-sample (conformal) quantile: the ceil((n+1) level)-th smallest |residual|
    rank = min(math.ceil((n + 1) * level), n)
    quantile = float(np.sort(np.abs(residuals))[rank - 1])
    oof_shape = quantile / math.sqrt(rms2) if rms2 > 0 else 0.0
    shape = max(NormalDist().inv_cdf((1 + level) / 2), oof_shape)
    spread_var = float(np.mean(np.var(predictions, axis=0, ddof=1))) if predictions.shape[1] else 0.0
    ensemble_var = rms2 - spread_var * (1 - 1 / k)
    if fresh_truth is not None and len(fresh_truth):
        truth = np.asarray(fresh_truth, dtype=np.float64)
        single = float(np.mean((truth[None, :] - predictions) ** 2))
        if single > 0:
            ensemble_var = rms2 * float(np.mean((truth - predictions.mean(0)) ** 2)) / single
    ensemble_var = max(ensemble_var, 0.0)
    base_var = max(ensemble_var - spread_weight * spread_var / k, 0.0)
    return IntervalCalibration(
        level=level,
        base=shape * math.sqrt(base_var),
        spread_coef=shape**2 * spread_weight / k,
        shape=shape,
        oof_rms=math.sqrt(rms2),
        mean_spread_var=spread_var,
        spread_source=spread_source,
        ensemble_var=ensemble_var,
        oof_shape=oof_shape,
    )


def interval_halfwidth(fold_predictions: np.ndarray, calibration: IntervalCalibration) -> np.ndarray:
    """Per-coin halfwidth in years from (K, N) fold predictions (the numpy twin of the ensemble's forward)."""
    spread_var = np.var(np.asarray(fold_predictions, dtype=np.float64), axis=0, ddof=1)
    return np.sqrt(calibration.base**2 + calibration.spread_coef * spread_var)
