"""Promote and roll back at the same moment, on PostgreSQL (row locks are real there): whichever wins, the MLflow
alias, the mirror's one Production row and the Promotion audit agree afterwards."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from registry.models import ModelVersion, Promotion
from registry.selectors import production_history
from registry.services import model_version_promote, model_version_rollback
from tests.concurrency import at_once
from tests.factories import UserFactory
from training.ml import tracking

# Not marked integration: it needs PostgreSQL's row locks but no broker or worker, so the SQLite pass collects it and
# says where it runs, and the PostgreSQL pass runs it. A skipif, not the postgres_row_locks fixture: it skips before
# the session's tiny fit is set up.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
        reason="runs in the PostgreSQL pass: needs row locks",
    ),
]

NAME = "coin-year-concurrency"
ROUNDS = 3


@pytest.fixture
def three_versions(registered_tiny_versions, isolated_mlflow, settings):
    """v1, v2, v3 of the tiny model under a name of their own, none in production yet."""
    import mlflow

    from registry import serving
    from registry.gateway import mlflow_ready

    settings.MLFLOW_MODEL_NAME = NAME
    mlflow_ready()
    versions = tracking.list_versions(NAME)
    if len(versions) < 3:
        logged = mlflow.MlflowClient().get_model_version("coin-year", str(registered_tiny_versions[0]))
        versions = [tracking.register_model(logged.source, NAME, run_id=logged.run_id) for _ in range(3)]
    tracking.delete_alias(NAME, "production")
    serving.reset()
    yield tuple(versions[:3])
    serving.reset()
    tracking.delete_alias(NAME, "production")


def alias_version() -> int | None:
    return tracking.get_alias_version(NAME, "production")


def promote_and_roll_back_at_once(versions, owner) -> None:
    """From v1 then v2 in production: one owner promotes v3 while another rolls back, released together."""
    v1, v2, v3 = versions
    for version in (v1, v2):
        if alias_version() != version:
            model_version_promote(version=version, actor=owner)
    outcomes = at_once(
        lambda: model_version_promote(version=v3, actor=owner),
        lambda: model_version_rollback(actor=owner),
        join_seconds=120,
    )
    for outcome in outcomes:  # each one succeeded or was refused cleanly
        assert not isinstance(outcome, BaseException) or type(outcome).__name__ == "ValidationError", outcome


def audit_rows() -> list[Promotion]:
    return list(
        Promotion.objects.filter(name=NAME).order_by("created_at", "id").select_related("from_version", "to_version")
    )


def test_concurrent_promote_and_rollback_leave_alias_mirror_and_audit_in_agreement(three_versions):
    owner = UserFactory(username="owner-concurrency", roles=["model_owner"], is_staff=True)
    for _round in range(ROUNDS):
        # given v1 then v2 promoted / when promote v3 and a rollback run at once
        promote_and_roll_back_at_once(three_versions, owner)

        # then the two moves ran one after the other, in whichever order the row locks let them: a rollback first
        # (v2 -> v1) then the promotion (v1 -> v3), or the promotion first (v2 -> v3) then the rollback undoing it
        # (v3 -> v2); and the registry, the mirror's one Production row and the last audit row name the same version
        v1, v2, v3 = three_versions
        serving = alias_version()
        moves = [(p.action, p.to_version.version) for p in audit_rows()[-2:]]
        rollback, promote = Promotion.Action.ROLLBACK, Promotion.Action.PROMOTE
        assert (moves, serving) in (
            ([(rollback, v1), (promote, v3)], v3),
            ([(promote, v3), (rollback, v2)], v2),
        ), (moves, serving)
        production_rows = ModelVersion.objects.filter(name=NAME, is_production=True)
        assert list(production_rows.values_list("version", flat=True)) == [serving]
        with_alias = ModelVersion.objects.filter(name=NAME, aliases__contains=["production"])
        assert list(with_alias.values_list("version", flat=True)) == [serving]
        assert audit_rows()[-1].to_version.version == serving
        assert production_history()[-1] == serving


def test_concurrent_promote_and_rollback_write_an_audit_chain_without_gaps(three_versions):
    owner = UserFactory(username="owner-concurrency", roles=["model_owner"], is_staff=True)
    for _round in range(ROUNDS):
        # given v1 then v2 promoted / when promote v3 and a rollback run at once
        promote_and_roll_back_at_once(three_versions, owner)

        # then every audit row starts from the version the row before it put in production
        audit = audit_rows()
        chain = [(p.action, p.from_version and p.from_version.version, p.to_version.version) for p in audit]
        for before, after in zip(audit, audit[1:], strict=False):
            assert after.from_version_id == before.to_version_id, chain
