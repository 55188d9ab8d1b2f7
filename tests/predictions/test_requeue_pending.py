"""The pending sweeper asks again only for coins that waited longer than the grace period: a coin uploaded a moment
ago has its prediction task in flight, and asking again for every pending coin on every sweep would queue each new
upload twice (and, with a backlog, flood the inference queue with duplicates of coins already queued)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from predictions import enqueue, services
from predictions.models import Coin
from tests.factories import CoinFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def asked(monkeypatch) -> list[int]:
    """The coins the sweeper asked a prediction for (enqueue.coin_predict, recorded instead of enqueued)."""
    calls: list[int] = []
    monkeypatch.setattr(enqueue, "coin_predict", lambda **kw: calls.append(kw["coin_id"]))
    return calls


def uploaded(seconds_ago: float, status: str = Coin.Status.PENDING) -> Coin:
    coin = CoinFactory(status=status)
    Coin.objects.filter(pk=coin.pk).update(created_at=timezone.now() - timedelta(seconds=seconds_ago))
    return coin


def test_only_coins_pending_longer_than_the_grace_period_are_asked_for_again(asked):
    # given a coin pending for ten minutes, one uploaded a second ago, and an old coin already predicted
    waited = uploaded(600)
    uploaded(1)
    uploaded(600, status=Coin.Status.PREDICTED)

    # when the sweeper runs with a two-minute grace period
    count = services.coins_requeue_pending(older_than_seconds=120)

    # then only the coin that waited is asked for again; the fresh upload's own task is left to do its work
    assert asked == [waited.pk] and count == 1


def test_the_default_grace_period_leaves_a_fresh_upload_alone(asked):
    uploaded(5)

    assert services.coins_requeue_pending() == 0 and asked == []
