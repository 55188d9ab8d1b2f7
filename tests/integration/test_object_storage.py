"""Photos on an S3-compatible object store: a real S3-protocol server (moto's standalone server, started here on
127.0.0.1), the project's own storage settings, and every reader going through the storage API.

Upload -> photos and thumbnails are objects in the bucket and nothing is written to the local media folder; the
prediction reads them through the storage; the photo views serve them; a failed batch removes what it stored; the
orphan sweep lists and removes objects no row names.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from predictions import services, sweeps
from predictions.models import Coin
from tests.integration.s3 import BUCKET
from training.ml.synthetic import iter_coins

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def objects(client) -> set[str]:
    return {item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def local_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_upload_predict_view_and_delete_go_through_the_object_store_and_never_the_local_disk(
    client, collector, production_model, s3_photos, settings, django_capture_on_commit_callbacks
):
    [(front, back, _year)] = list(iter_coins(1, seed=41))
    client.force_login(collector)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("coin-upload"),
            {"front_image": ContentFile(front, name="f.jpg"), "back_image": ContentFile(back, name="b.jpg")},
        )

    assert response.status_code == 302, response.content[:300]
    coin = Coin.objects.get()
    names = [coin.front_image.name, coin.back_image.name, coin.front_thumbnail.name, coin.back_thumbnail.name]
    assert objects(s3_photos) == {f"media/{name}" for name in names}
    assert local_files(settings) == []
    assert coin.status == Coin.Status.PREDICTED  # the task read both photos back through the storage API
    stored = s3_photos.get_object(Bucket=BUCKET, Key=f"media/{coin.front_image.name}")["Body"].read()
    assert stored == front

    thumb = client.get(reverse("coin-image", kwargs={"coin_id": coin.id, "side": "front"}) + "?size=thumb")
    full = client.get(reverse("coin-image", kwargs={"coin_id": coin.id, "side": "back"}))
    assert thumb.status_code == full.status_code == 200
    assert b"".join(full.streaming_content) == back

    with django_capture_on_commit_callbacks(execute=True):
        services.coin_delete(coin=coin)
    if Coin.objects.filter(pk=coin.pk).exists():  # soft-deleted: a coin with a label keeps its photos
        assert objects(s3_photos)
    else:
        assert objects(s3_photos) == set()
    assert local_files(settings) == []


def test_a_failed_batch_removes_its_objects_and_the_sweep_removes_orphans(
    collector, production_model, s3_photos, settings, monkeypatch
):
    from predictions import inference

    pairs = [
        (services.photo_check_header(f, field="front_image"), services.photo_check_header(b, field="back_image"))
        for f, b, _year in iter_coins(2, seed=43)
    ]
    monkeypatch.setattr(inference, "prediction_store", lambda **kwargs: (_ for _ in ()).throw(RuntimeError("db gone")))

    with pytest.raises(RuntimeError, match="db gone"):
        services.coin_batch_predict(owner=collector, pairs=pairs)
    assert objects(s3_photos) == set() and Coin.objects.count() == 0

    # an object left by a killed process (no row names it) is listed and removed by the sweep
    default_storage.save("coins/5/left-behind.jpg", ContentFile(b"\xff\xd8 not really"))
    seen, removed = sweeps.photo_orphans_sweep(grace_seconds=0)
    assert (seen, removed) == (1, 1) and objects(s3_photos) == set()
