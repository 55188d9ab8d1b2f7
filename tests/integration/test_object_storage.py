"""Photos on an S3-compatible object store: a real S3-protocol server (moto's standalone server, started here on
127.0.0.1), the project's own storage settings, and every reader going through the storage API.

Upload -> photos and thumbnails are objects in the bucket and nothing is written to the local media folder; the
prediction reads them through the storage; the photo views serve them; a failed batch removes what it stored; the
orphan sweep lists and removes objects no row names.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from predictions import services, sweeps
from predictions.models import Coin
from training.ml.synthetic import iter_coins

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

BUCKET = "coinsite-test"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto's S3 server on 127.0.0.1, a real HTTP server speaking the S3 protocol."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115  (the server keeps it open)
    server = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, "moto_server exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.2)
    yield endpoint
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def s3_photos(s3_endpoint, settings, monkeypatch):
    """The site's photo storage switched to the S3 server, as AWS_STORAGE_BUCKET_NAME & co. switch it; a fresh bucket."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "location": "media",
                "default_acl": None,
                "file_overwrite": True,
            },
        },
    }
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


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
