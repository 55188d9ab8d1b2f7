"""One set of photo limits on every path: a photo accepted at upload under a raised COINSITE_MAX_UPLOAD_BYTES is
never refused later (prediction task, re-score, training, comparison) by the library's tighter default."""

from __future__ import annotations

import struct

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions import inference
from predictions.models import Coin
from tests.factories import jpeg_bytes
from training.ml import decoding, images
from training.ml.config import seed_regression
from training.ml.data import CoinPairDataset, CoinSample
from training.ml.photo_limits import DEFAULT_LIMITS

pytestmark = pytest.mark.django_db


def padded_jpeg(total: int) -> bytes:
    """An ordinary small JPEG made ``total`` bytes long by APP15 segments (metadata a camera might write)."""
    data = jpeg_bytes(seed=4)
    padding = b""
    while len(data) + len(padding) < total:
        chunk = min(65533, total - len(data) - len(padding))
        padding += b"\xff\xef" + struct.pack(">H", chunk + 2) + b"\x00" * chunk
    return data[:2] + padding + data[2:]


@pytest.fixture
def raised_limit(settings):
    settings.COINSITE_MAX_UPLOAD_BYTES = 40 * 1024 * 1024
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * settings.COINSITE_MAX_UPLOAD_BYTES
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * settings.COINSITE_MAX_UPLOAD_BYTES
    return settings


def test_a_photo_over_the_library_default_but_within_raised_settings_is_predicted(
    raised_limit, collector, production_model
):
    big = padded_jpeg(12 * 1024 * 1024)
    with pytest.raises(images.ImageTooLargeError):  # the library's own default would refuse it
        decoding.decode(big, target=64, limits=DEFAULT_LIMITS)
    assert raised_limit.COINSITE_PHOTO_LIMITS.max_bytes == 40 * 1024 * 1024
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")

    response = api.post(
        "/api/coins/",
        {"front_image": SimpleUploadedFile("f.jpg", big), "back_image": SimpleUploadedFile("b.jpg", jpeg_bytes())},
        format="multipart",
    )
    assert response.status_code == 202, response.content[:300]
    coin = Coin.objects.get()

    assert inference.coin_predict(coin_id=coin.pk, force=True) is not None  # the task's path, and a re-score's
    coin.refresh_from_db()
    assert coin.status != Coin.Status.FAILED, coin.status_detail
    dataset = CoinPairDataset(
        [CoinSample(front=big, back=jpeg_bytes(), year=1900)],
        seed_regression(),
        train=False,
        limits=raised_limit.COINSITE_PHOTO_LIMITS,
    )
    dataset.preload()  # training decodes it too


def test_without_limits_passed_a_django_process_uses_the_settings_limits(raised_limit):
    big = padded_jpeg(12 * 1024 * 1024)

    assert images.check_header(big) == "JPEG"  # a caller that passes nothing gets the settings, not the default
