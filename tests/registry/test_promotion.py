"""Promotion and rollback as one move of alias, mirror and audit (registry.services), and what a failure leaves.

These tests use three versions of the session's tiny model under their own registered name, so nothing here moves
the alias of the `coin-year` versions other tests serve.
"""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import OperationalError, connections

from registry.models import ModelVersion, Promotion
from registry.services import model_version_promote, model_version_rollback
from tests.factories import UserFactory
from training.ml import tracking

pytestmark = pytest.mark.django_db

SAFETY_MODEL = "coin-year-safety"


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
