"""The promotion verdict at its margin, and promotion and rollback as one move of alias, mirror and audit.

The verdict's inputs (each side's MAE on the held-out coins) are given directly, so the boundary is exact: a
candidate better by exactly PROMOTION_MARGIN_YEARS is recommended, one better by less is not.
The registry tests use three versions of the session's tiny model under their own registered name, so nothing
here moves the alias of the `coin-year` versions other tests serve.
"""

from __future__ import annotations

import sys
from unittest import mock

import pytest
from django.db import OperationalError, connections

from registry.models import ModelVersion, Promotion
from registry.services import model_version_promote, model_version_rollback
from tests.factories import UserFactory
from training.ml import tracking
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


# --- promotion, its failure, and rollback -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def safety_versions(registered_tiny_versions, mlflow_dir):
    """Three registered versions (v1, v2, v3) of the tiny model under a name of their own (one logged model)."""
    tracking.configure(
        f"sqlite:///{mlflow_dir / 'mlflow.db'}", artifact_root=str(mlflow_dir / "artifacts"), experiment="coin-year"
    )
    existing = tracking.list_versions(SAFETY_MODEL)
    if len(existing) >= 3:
        return tuple(existing[:3])
    import mlflow

    logged = mlflow.MlflowClient().get_model_version("coin-year", str(registered_tiny_versions[0]))
    source, run_id = logged.source, logged.run_id
    return tuple(tracking.register_model(source, SAFETY_MODEL, run_id=run_id) for _ in range(3))


@pytest.fixture
def safety_model(safety_versions, isolated_mlflow, settings):
    """SAFETY_MODEL as the served name, with no version in production yet; yields (v1, v2, v3)."""
    from registry import serving
    from registry.gateway import mlflow_ready

    settings.MLFLOW_MODEL_NAME = SAFETY_MODEL
    mlflow_ready()
    tracking.delete_alias(SAFETY_MODEL, "production")
    serving.reset()
    yield safety_versions
    serving.reset()
    tracking.delete_alias(SAFETY_MODEL, "production")


def alias_version() -> int | None:
    return tracking.get_alias_version(SAFETY_MODEL, "production")


def mirrored_production() -> list[int]:
    return list(ModelVersion.objects.filter(name=SAFETY_MODEL, is_production=True).values_list("version", flat=True))


@pytest.fixture
def owner(db):
    return UserFactory(username="owner-safety", roles=["model_owner"], is_staff=True)


def test_repeated_rollbacks_walk_back_through_the_history_never_forward(safety_model, owner):
    # given v1, v2, v3 promoted in turn
    v1, v2, v3 = safety_model
    for version in (v1, v2, v3):
        model_version_promote(version=version, actor=owner)
    assert alias_version() == v3

    # when rolling back twice
    first = model_version_rollback(actor=owner)
    after_first = alias_version()
    second = model_version_rollback(actor=owner)

    # then Production went v3 -> v2 -> v1, in the registry, the mirror and the audit
    assert (first.from_version.version, first.to_version.version, after_first) == (v3, v2, v2)
    assert (second.from_version.version, second.to_version.version, alias_version()) == (v2, v1, v1)
    assert mirrored_production() == [v1]
    assert first.action == second.action == Promotion.Action.ROLLBACK


def test_rollback_after_walking_back_to_the_first_version_is_refused(safety_model, owner):
    # given v1 and v2 promoted, then rolled back to v1
    v1, v2, _v3 = safety_model
    for version in (v1, v2):
        model_version_promote(version=version, actor=owner)
    model_version_rollback(actor=owner)

    # when rolling back again / then there is nothing earlier, and v1 keeps serving
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        model_version_rollback(actor=owner)
    assert alias_version() == v1 and mirrored_production() == [v1]


@pytest.mark.django_db(transaction=True)
def test_alias_moves_back_when_the_promotion_commit_fails(safety_model):
    # given v1 in production (a transactional test: the promotion's atomic block is a real transaction)
    v1, v2, _v3 = safety_model
    owner = UserFactory(username="owner-commit", roles=["model_owner"], is_staff=True)
    model_version_promote(version=v1, actor=owner)
    promotions_before = Promotion.objects.count()

    # when the database commit fails after the alias moved to v2
    connection = connections["default"]
    real_commit = connection.commit

    def commit_failing_once_the_alias_moved():
        if alias_version() == v2:
            raise OperationalError("could not commit: the server closed the connection")
        return real_commit()

    with mock.patch.object(connection, "commit", side_effect=commit_failing_once_the_alias_moved):
        with pytest.raises(OperationalError):
            model_version_promote(version=v2, actor=owner)

    # then the alias is back on v1, and the mirror and the audit never saw v2 serve
    assert alias_version() == v1
    assert mirrored_production() == [v1]
    assert Promotion.objects.count() == promotions_before
    assert "production" not in ModelVersion.objects.get(name=SAFETY_MODEL, version=v2).aliases


def test_alias_and_mirror_stay_put_when_mlflow_refuses_the_move(safety_model, owner):
    # given v1 in production
    v1, v2, _v3 = safety_model
    model_version_promote(version=v1, actor=owner)

    # when MLflow refuses to move the alias
    refusing = mock.patch.object(tracking, "set_alias", side_effect=RuntimeError("registry unavailable"))
    with refusing, pytest.raises(RuntimeError):
        model_version_promote(version=v2, actor=owner)

    # then nothing moved: the registry, the mirror and the audit still say v1
    assert alias_version() == v1 and mirrored_production() == [v1]
    assert list(Promotion.objects.values_list("to_version__version", flat=True)) == [v1]
