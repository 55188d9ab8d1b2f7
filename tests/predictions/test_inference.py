"""predictions.inference: a stored coin predicted once by the serving version, or left pending/failed (the model holder
itself is tested in tests/registry/test_serving.py)."""

import pytest

from predictions import inference
from predictions.models import Coin, Prediction
from registry import serving
from tests.concurrency import at_once
from tests.factories import CoinFactory, UserFactory, jpeg_bytes

pytestmark = pytest.mark.django_db


def pair(seed: int) -> tuple[bytes, bytes]:
    return jpeg_bytes(seed=2 * seed), jpeg_bytes(color=(90, 90, 110), seed=2 * seed + 1)


def test_without_a_registered_model_predictions_wait(no_model, collector):
    coin = CoinFactory(owner=collector)

    with pytest.raises(serving.NoProductionModel):
        serving.predict_pairs([pair(1)])
    assert inference.coin_predict(coin_id=coin.id) is None

    coin.refresh_from_db()
    assert coin.status == Coin.Status.PENDING


def test_coin_predict_stores_prediction_of_the_serving_version_once(production_model, collector):
    coin = CoinFactory(owner=collector)

    first = inference.coin_predict(coin_id=coin.id)
    again = inference.coin_predict(coin_id=coin.id)  # a redelivered task (acks_late) must not predict twice

    coin.refresh_from_db()
    assert coin.status == Coin.Status.PREDICTED
    assert first.pk == again.pk and coin.predictions.count() == 1
    assert first.model_version.version == production_model


def test_coin_with_unreadable_photo_is_marked_failed_not_crashed(production_model, collector):
    coin = CoinFactory(owner=collector)
    coin.front_image.storage.delete(coin.front_image.name)

    assert inference.coin_predict(coin_id=coin.id) is None

    coin.refresh_from_db()
    assert coin.status == Coin.Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_two_tasks_for_one_coin_at_once_store_one_prediction(production_model, postgres_row_locks):
    # given a pending coin (committed: the threads read it on their own connections) asked for twice at once (a
    # requeue by age beside its original message)
    coin = CoinFactory(owner=UserFactory(roles=["collector"]))

    # when both tasks run at once, on two threads with their own connections
    outcomes = at_once(*[lambda: inference.coin_predict(coin_id=coin.id)] * 2)

    # then one prediction row, which both return
    assert not [outcome for outcome in outcomes if isinstance(outcome, BaseException)], outcomes
    assert Prediction.objects.filter(coin=coin).count() == 1
    assert {outcome.pk for outcome in outcomes} == {Prediction.objects.get(coin=coin).pk}
