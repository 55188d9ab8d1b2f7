"""Who may fetch a coin's photos: its owner, curators and model owners; staff status alone is not enough. Thumbnails
are served from storage (made once), full views carry the right type and name, and a broken photo is never a 500."""

from __future__ import annotations

import io

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from PIL import Image

from predictions import services
from predictions.models import Coin
from tests.factories import CoinFactory, UserFactory
from training.ml import decoding

pytestmark = pytest.mark.django_db


def url(coin: Coin, side: str = "front", **query: str) -> str:
    base = reverse("coin-image", kwargs={"coin_id": coin.id, "side": side})
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize(
    ("who", "expected"),
    [("owner", 200), ("curator", 200), ("model_owner", 200), ("staff_without_group", 404), ("other", 404)],
)
def test_photo_access_follows_the_roles_exactly(client, collector, who, expected):
    coin = CoinFactory(owner=collector)
    users = {
        "owner": collector,
        "curator": UserFactory(roles=["curator"]),
        "model_owner": UserFactory(roles=["model_owner"]),
        "staff_without_group": UserFactory(is_staff=True),
        "other": UserFactory(roles=["collector"]),
    }
    client.force_login(users[who])

    for query in ({}, {"size": "thumb"}):
        assert client.get(url(coin, **query)).status_code == expected, query


def test_a_coin_without_a_stored_thumbnail_gets_one_made_once_and_then_served_from_storage(client, collector):
    coin = CoinFactory(owner=collector)
    client.force_login(collector)

    first = client.get(url(coin, size="thumb"))
    coin.refresh_from_db()
    second = client.get(url(coin, size="thumb"))

    assert first.status_code == second.status_code == 200
    assert coin.front_thumbnail.name.startswith(f"coins/{collector.id}/thumbs/")
    assert body(first) == body(second) == coin.front_thumbnail.open("rb").read()
    assert second["Content-Disposition"] == f'inline; filename="coin-{coin.id}-front-thumb.jpg"'


@pytest.mark.parametrize(("fmt", "extension"), [("TIFF", "tif"), ("BMP", "bmp")])
def test_full_view_of_a_format_browsers_cannot_show_is_a_jpeg_named_jpg(client, collector, fmt, extension):
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (90, 80, 70)).save(buffer, fmt)
    coin = CoinFactory(owner=collector, front_image=ContentFile(buffer.getvalue(), name=f"front.{extension}"))
    client.force_login(collector)

    response = client.get(url(coin))

    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response["Content-Disposition"] == f'inline; filename="coin-{coin.id}-front.jpg"'
    assert Image.open(io.BytesIO(body(response))).format == "JPEG"


def test_avif_and_mpo_photos_keep_a_real_extension():
    assert services.EXTENSIONS["AVIF"] == "avif" and services.EXTENSIONS["MPO"] == "jpg"


def test_a_stored_photo_that_cannot_be_decoded_is_a_404_not_a_500(client, collector):
    coin = CoinFactory(owner=collector, front_image=ContentFile(b"not an image at all", name="front.tif"))
    client.force_login(collector)

    assert client.get(url(coin)).status_code == 404
    assert client.get(url(coin, size="thumb")).status_code == 404


def test_uploads_with_malformed_exif_never_answer_5xx_on_upload_or_on_their_photo_views(client, collector, settings):
    import random

    # more uploads than the page's default 30 a minute: the throttle is not what this test is about
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"upload": "1000/min"}}

    exif = Image.Exif()
    exif[0x0112] = 3
    exif[0x8769] = {0x9003: "2024:01:01 00:00:00"}
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 40, 40)).save(buffer, "JPEG", exif=exif.tobytes())
    good = buffer.getvalue()
    start = good.index(b"Exif\x00\x00") + 6
    generator = random.Random(12)
    client.force_login(collector)
    statuses = []
    for index in range(60):
        data = bytearray(good)
        for _ in range(generator.randint(1, 6)):
            data[start + generator.randrange(60)] = generator.randrange(256)
        files = {
            "front_image": ContentFile(bytes(data), name=f"f{index}.jpg"),
            "back_image": ContentFile(good, name="b.jpg"),
        }
        response = client.post(reverse("coin-upload"), files)
        statuses.append(response.status_code)
        if response.status_code == 302:
            coin = Coin.objects.latest("id")
            statuses += [client.get(url(coin, **query)).status_code for query in ({}, {"size": "thumb"})]
    assert statuses and max(statuses) < 500, sorted(set(statuses))
    assert statuses.count(302) > 30


def test_a_coin_its_owner_deleted_is_gone_for_them_but_curators_still_see_its_photos(client, collector):
    from django.utils import timezone

    coin = CoinFactory(owner=collector, deleted_at=timezone.now())
    client.force_login(collector)
    assert client.get(url(coin)).status_code == 404

    client.force_login(UserFactory(roles=["curator"]))
    assert client.get(url(coin)).status_code == 200


def test_the_full_view_of_a_tiff_is_decoded_once_then_served_from_the_cache(client, collector, monkeypatch):
    # given a TIFF coin, and the real decoder counted
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (90, 80, 70)).save(buffer, "TIFF")
    coin = CoinFactory(owner=collector, front_image=ContentFile(buffer.getvalue(), name="front.tif"))
    decodes: list[int] = []
    real_decode = decoding.decode
    monkeypatch.setattr(decoding, "decode", lambda data, **kw: decodes.append(len(data)) or real_decode(data, **kw))
    client.force_login(collector)

    # when the full view is asked for three times (no ETag sent back: a new browser each time)
    answers = [body(client.get(url(coin))) for _ in range(3)]

    # then the photo was decoded once, and every answer is the same JPEG
    assert len(decodes) == 1
    assert answers[0] == answers[1] == answers[2] and Image.open(io.BytesIO(answers[0])).format == "JPEG"
