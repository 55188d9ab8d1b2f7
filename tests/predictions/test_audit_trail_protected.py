"""The audit trail is never erased by the database either: a coin that a curator decided on cannot be deleted while
its Corrections exist (Correction.coin is PROTECT), whatever path the delete takes. services.coin_delete hides such a
coin instead (tests/predictions/test_coin_delete.py); this pins the database's own refusal, which would otherwise
turn a stray `coin.delete()` (a shell, an admin bulk action, a cleanup script) into a silent loss of the decisions."""

from __future__ import annotations

import pytest
from django.db.models import ProtectedError

from predictions import services
from predictions.models import Coin, Correction
from tests.factories import CoinFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def decided_coin(collector, curator) -> Coin:
    """A predicted coin that a curator corrected from 1874 to 1880."""
    coin = CoinFactory(owner=collector, status=Coin.Status.PREDICTED)
    PredictionFactory(coin=coin, year=1874, model_version=ModelVersionFactory(version=4))
    services.coin_correct(coin=coin, curator=curator, year=1880)
    return coin


@pytest.mark.parametrize("how", ["instance", "queryset"])
def test_a_coin_with_a_curators_decision_cannot_be_erased_from_the_database(decided_coin, how):
    # given a coin with one curator's decision
    before = list(Correction.objects.filter(coin=decided_coin).values_list("pk", "old_year", "new_year"))
    assert len(before) == 1

    # when something deletes the row itself, bypassing the service that hides it
    with pytest.raises(ProtectedError):
        if how == "instance":
            decided_coin.delete()
        else:
            Coin.objects.filter(pk=decided_coin.pk).delete()

    # then the coin and its decision are both still there, unchanged
    assert Coin.objects.filter(pk=decided_coin.pk).exists()
    assert list(Correction.objects.filter(coin=decided_coin).values_list("pk", "old_year", "new_year")) == before
