"""predictions.services: photos stored outside the database transaction, and nothing left behind when a write fails."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.db import connections
from PIL import Image

from predictions import services
from predictions.models import Coin, Prediction
from tests.factories import CoinFactory, PredictionFactory, jpeg_bytes

pytestmark = pytest.mark.django_db


def files_under(root) -> list[Path]:
    return [path for path in Path(root).rglob("*") if path.is_file()] if Path(root).exists() else []


def checked_pair(seed: int) -> tuple[services.CheckedPhoto, services.CheckedPhoto]:
    return (
        services.photo_check_header(jpeg_bytes(seed=seed), field="front_image"),
        services.photo_check_header(jpeg_bytes(seed=seed + 1), field="back_image"),
    )


@pytest.fixture
def storage_writes(monkeypatch):
    """Record, for every photo file written (in whatever thread), how deep in atomic blocks the test's database
    connection was at that moment."""
    storage = Coin._meta.get_field("front_image").storage
    original = storage.save
    depths: list[int] = []
    requests_connection = connections["default"]  # this thread's: the one the service's transaction uses
    baseline = len(requests_connection.atomic_blocks)  # the test's own wrapping transaction

    def save(name, content, *args, **kwargs):
        depths.append(len(requests_connection.atomic_blocks) - baseline)
        return original(name, content, *args, **kwargs)

    monkeypatch.setattr(storage, "save", save)
    return depths


def test_coin_photos_are_written_before_the_transaction_not_inside_it(collector, settings, storage_writes):
    """A slow disk must never hold the database's write lock (SQLite has one for the whole file)."""
    front, back = checked_pair(3)

    coin = services.coin_create_checked(owner=collector, front=front, back=back, enqueue_prediction=False)

    assert storage_writes == [0, 0]
    assert coin.front_sha256 == hashlib.sha256(front.data).hexdigest()
    assert coin.back_sha256 == hashlib.sha256(back.data).hexdigest()
    assert Path(coin.front_image.path).read_bytes() == front.data
    assert Path(coin.back_image.path).read_bytes() == back.data


def test_a_coin_row_that_fails_removes_the_photos_it_wrote(collector, settings, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise RuntimeError("database is gone")

    monkeypatch.setattr(Coin, "save", refuse)
    front, back = checked_pair(5)

    with pytest.raises(RuntimeError, match="database is gone"):
        services.coin_create_checked(owner=collector, front=front, back=back, enqueue_prediction=False)

    assert files_under(settings.MEDIA_ROOT) == []


def test_batch_predict_stores_photos_outside_the_transaction(collector, production_model, settings, storage_writes):
    pairs = [checked_pair(7), checked_pair(9)]

    predictions = services.coin_batch_predict(owner=collector, pairs=pairs)

    assert storage_writes == [0] * 8  # 4 photos and their 4 thumbnails, none inside a transaction
    assert [p.coin.front_sha256 for p in predictions] == [hashlib.sha256(f.data).hexdigest() for f, _b in pairs]
    for prediction, (front, back) in zip(predictions, pairs, strict=True):
        assert Path(prediction.coin.front_image.path).read_bytes() == front.data
        assert Path(prediction.coin.back_image.path).read_bytes() == back.data
        assert prediction.model_version.version == production_model
        with Image.open(prediction.coin.front_thumbnail.path) as thumbnail:  # made from the same decode
            assert thumbnail.format == "JPEG" and max(thumbnail.size) <= services.THUMBNAIL_PX


def test_batch_predict_that_fails_after_the_writes_leaves_no_row_and_no_file(
    collector, production_model, settings, monkeypatch
):
    from predictions import inference

    def fail(**kwargs):
        raise RuntimeError("database is gone")

    monkeypatch.setattr(inference, "prediction_store", fail)

    with pytest.raises(RuntimeError, match="database is gone"):
        services.coin_batch_predict(owner=collector, pairs=[checked_pair(11), checked_pair(13)])

    assert Coin.objects.count() == 0 and Prediction.objects.count() == 0
    assert files_under(settings.MEDIA_ROOT) == []


def test_a_rejected_prediction_gives_no_year_and_is_never_confirmed_in_bulk(collector, curator):
    # given a coin the model judged not a coin (its row keeps the model's guess, never shown as an answer)
    coin = CoinFactory(owner=collector)
    PredictionFactory(coin=coin, year=1874, rejected="not_a_coin")

    # when a curator confirms predicted years in bulk
    result = services.coins_confirm_predicted(coins=[coin], curator=curator)

    # then the coin has no year, was skipped, and got no label
    coin.refresh_from_db()
    assert coin.display_year is None
    assert (result.confirmed, result.skipped) == (0, 1)
    assert coin.verified_year is None and not coin.corrections.exists()
