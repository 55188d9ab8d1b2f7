"""The typed shapes of the stored metrics read the keys the writers produce, and older rows give None, not errors."""

from __future__ import annotations

from training.schemas import Comparison, RunMetrics, RunProgress


def test_run_metrics_read_the_flat_keys_the_nested_interval_level_and_the_folds():
    stored = {
        "mae": 7.25,
        "mae_std": 0.5,
        "baseline_mae": 80.0,
        "r2": 0.91,
        "within_5": 0.4,
        "interval_coverage": 0.81,
        "interval_halfwidth": 12.0,
        "interval": {"level": 0.8, "coverage": 0.81, "halfwidth": 12.0},
        "folds": [{"mae": 7.0, "r2": 0.9}, {"mae": 7.5, "r2": 0.92}],
        "fold_1_mae": 7.0,
        "beats_baseline": True,
    }
    metrics = RunMetrics.from_dict(stored)
    assert (metrics.mae, metrics.mae_std, metrics.baseline_mae, metrics.interval_level) == (7.25, 0.5, 80.0, 0.8)
    assert [(fold.fold, fold.mae) for fold in metrics.folds] == [(1, 7.0), (2, 7.5)]
    assert metrics.mae_over_baseline == 7.25 / 80.0


def test_run_metrics_of_an_mlflow_mirror_read_flat_fold_keys():
    metrics = RunMetrics.from_dict({"mae": 9.0, "fold_2_mae": 9.5, "fold_1_mae": 8.5, "fold_1_r2": 0.7})
    assert [(fold.fold, fold.mae, fold.r2) for fold in metrics.folds] == [(1, 8.5, 0.7), (2, 9.5, None)]


def test_an_old_or_failed_row_gives_none_for_what_it_lacks():
    metrics = RunMetrics.from_dict({"mae": None, "r2": float("nan"), "within_5": "n/a"})
    assert metrics == RunMetrics()
    assert metrics.or_else(RunMetrics(mae=3.0)).mae == 3.0
    assert Comparison.from_dict({}) is None
    assert RunProgress.from_dict({"stage": "freezing data"}) == RunProgress(stage="freezing data")


def test_comparison_of_a_first_version_has_no_production_side():
    comparison = Comparison.from_dict(
        {
            "candidate": {"version": 1, "count": 12, "mae": 6.0, "mae_by_decade": {"1870": 5.0}},
            "production": None,
            "corrected": {"count": 0, "candidate_mae": None, "production_mae": None},
            "evaluation_count": 12,
            "margin": 0.5,
            "better": True,
            "delta_mae": None,
            "reason": "first version: nothing to compare with",
            "verdict": "recommended",
        }
    )
    assert comparison.production is None
    assert comparison.candidate.mae_by_decade == {"1870": 5.0}
    assert comparison.corrected.count == 0 and comparison.better is True
