"""The promotion verdict at its margin (promotion and rollback themselves: tests/registry/test_promotion.py).

The verdict's inputs (each side's MAE on the held-out coins) are given directly, so the boundary is exact: a
candidate better by exactly PROMOTION_MARGIN_YEARS is recommended, one better by less is not.
"""

from __future__ import annotations

import sys

import pytest

from training.models import DatasetVersion
from training.services.comparison import model_version_compare

pytestmark = pytest.mark.django_db

MARGIN = 0.5
PRODUCTION_MAE = 10.0
SAFETY_MODEL = "coin-year-safety"


def verdict_for(monkeypatch, settings, *, candidate_mae: float, production_mae: float = PRODUCTION_MAE) -> dict:
    """model_version_compare on an (empty) evaluation set whose scores are given: v2 the candidate, v1 Production."""
    settings.PROMOTION_MARGIN_YEARS = MARGIN
    maes = {1: production_mae, 2: candidate_mae}

    def evaluated(*, version, samples, progress=False):
        return {"version": version, "count": 40, "metrics": {"mae": maes[version]}, "mae_by_decade": {}}

    comparing_module = sys.modules[model_version_compare.__module__]
    monkeypatch.setattr(comparing_module, "model_version_evaluate", evaluated)
    evaluation = DatasetVersion.objects.create(
        content_hash="e" * 64, kind=DatasetVersion.Kind.EVALUATION, manifest=[], coin_count=0
    )
    return model_version_compare(candidate=2, production=1, evaluation=evaluation)


@pytest.mark.parametrize(
    ("candidate_mae", "verdict"),
    [
        (PRODUCTION_MAE - 2.0, "recommended"),  # clearly better
        (PRODUCTION_MAE - MARGIN, "recommended"),  # better by exactly the margin
        (PRODUCTION_MAE - MARGIN / 2, "rejected"),  # better, but by less than the margin
        (PRODUCTION_MAE, "rejected"),  # as good
        (PRODUCTION_MAE + MARGIN / 2, "rejected"),  # worse by less than the margin
        (PRODUCTION_MAE + 2.0, "rejected"),  # clearly worse
    ],
)
def test_candidate_is_recommended_only_when_better_by_at_least_the_margin(
    monkeypatch, settings, candidate_mae, verdict
):
    # given Production's MAE of 10 years on the held-out coins and a margin of half a year
    # when comparing a candidate with the given MAE on the same coins
    comparison = verdict_for(monkeypatch, settings, candidate_mae=candidate_mae)

    # then the verdict follows the margin exactly, and says what it compared
    assert comparison["verdict"] == verdict
    assert comparison["better"] is (verdict == "recommended")
    assert comparison["delta_mae"] == pytest.approx(candidate_mae - PRODUCTION_MAE)
    assert comparison["margin"] == MARGIN
