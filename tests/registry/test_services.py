"""registry.services: who may promote or roll back, checked before anything is touched, and what is refused."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError

from registry.models import Promotion
from registry.services import model_version_promote, model_version_rollback
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", [None, "collector", "curator"])
def test_only_model_owners_promote(role):
    user = AnonymousUser() if role is None else UserFactory(roles=[role])

    with pytest.raises(PermissionDenied):
        model_version_promote(version=1, actor=user)
    with pytest.raises(PermissionDenied):
        model_version_rollback(actor=user)

    assert not Promotion.objects.exists()


def test_nobody_promotes_by_hand_as_the_system():
    with pytest.raises(PermissionDenied):
        model_version_promote(version=1, actor=None, action=Promotion.Action.PROMOTE)


def test_rollback_without_history_is_refused(model_owner):
    with pytest.raises(ValidationError):
        model_version_rollback(actor=model_owner)


def test_promoting_a_version_that_is_not_registered_is_refused(model_owner, settings):
    settings.MLFLOW_MODEL_NAME = "coin-year-never-registered"

    with pytest.raises(ValidationError, match="no registered version 7"):
        model_version_promote(version=7, actor=model_owner)

    assert not Promotion.objects.exists()
