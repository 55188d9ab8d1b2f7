"""The role rules: collectors see only their own coins; only curators correct; only model owners promote."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404

from predictions import selectors, services
from predictions.roles import COLLECTOR, CURATOR, MODEL_OWNER, ROLE_PERMISSIONS, can_review
from registry.roles import can_promote, can_train
from tests.factories import CoinFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_role_groups_exist_with_their_permissions():
    for role, perms in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=role)
        granted = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert granted == set(perms)


def test_every_sign_up_becomes_a_collector():
    user = UserFactory()
    assert list(user.groups.values_list("name", flat=True)) == [COLLECTOR]


def test_collector_sees_only_own_coins(collector, other_collector):
    mine = CoinFactory(owner=collector)
    CoinFactory(owner=other_collector)
    assert list(selectors.coin_list_for_user(user=collector)) == [mine]


def test_collector_cannot_see_other_collectors_coin(collector, other_collector):
    theirs = CoinFactory(owner=other_collector)
    with pytest.raises(Http404):
        selectors.coin_get_for_user(user=collector, coin_id=theirs.id)


@pytest.mark.parametrize("role", [None, MODEL_OWNER])
def test_only_curators_correct_years(role):
    user = UserFactory(roles=[role] if role else [])
    coin = CoinFactory()
    assert not can_review(user)
    with pytest.raises(PermissionDenied):
        services.coin_correct(coin=coin, curator=user, year=1900)
    coin.refresh_from_db()
    assert coin.verified_year is None and not coin.corrections.exists()


def test_curator_correction_sets_label_and_writes_audit_row(curator):
    coin = CoinFactory()
    correction = services.coin_correct(coin=coin, curator=curator, year=1901)
    coin.refresh_from_db()
    assert coin.verified_year == 1901
    assert (correction.curator, correction.old_year, correction.new_year) == (curator, None, 1901)


@pytest.mark.parametrize("role", [None, CURATOR])
def test_only_model_owners_promote_and_train(role):
    user = UserFactory(roles=[role] if role else [])
    assert not can_promote(user) and not can_train(user)


def test_model_owner_may_promote_and_train(model_owner):
    assert can_promote(model_owner) and can_train(model_owner)
    assert not can_review(model_owner)


def test_year_filter_uses_the_verified_year_when_there_is_one(collector):
    from tests.factories import PredictionFactory

    verified = PredictionFactory(coin=CoinFactory(owner=collector, verified_year=1950), year=1800).coin
    predicted = PredictionFactory(coin=CoinFactory(owner=collector), year=1805).coin

    assert list(selectors.coin_list_for_user(user=collector, year_min=1900)) == [verified]
    assert list(selectors.coin_list_for_user(user=collector, year_max=1850)) == [predicted]
