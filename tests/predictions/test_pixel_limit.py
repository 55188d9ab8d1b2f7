"""The pixel limit answers 413 with a model in Production: a photo with more pixels than COINSITE_MAX_IMAGE_PIXELS is
refused before it is decoded, naming its size and the limit, and the model never sees it.

Without a model every prediction is refused (503) whatever its photos, so a pixel-limit test without one cannot tell
a working limit from a missing one; each request here is first shown to be answered by the model when its photo is
within the limit.
"""

from __future__ import annotations

import base64
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions.models import Coin, Prediction
from tests.factories import jpeg_bytes

pytestmark = pytest.mark.django_db


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def flat_png(width: int, height: int) -> bytes:
    """A photo with many pixels in few bytes (one colour compresses to almost nothing): what the limit is for."""
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@pytest.fixture
def api(collector) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")
    return client


def predict(api, back: bytes):
    inputs = [{"front_image_base64": b64(jpeg_bytes(seed=1)), "back_image_base64": b64(back)}]
    return api.post("/api/predict", {"inputs": inputs}, format="json")


def assert_pixel_refusal(response, *, field: str, pixels: str, limit: str) -> None:
    assert response.status_code == 413, response.content[:300]
    body = response.json()
    assert body["field"] == field
    assert f"= {pixels}, more than the limit of {limit}" in body["error"], body


def test_predict_refuses_a_photo_over_a_lowered_pixel_limit_with_413_while_a_model_serves(
    api, production_model, settings
):
    # given a model in Production and a limit of 0.25 megapixels
    settings.COINSITE_MAX_IMAGE_PIXELS = 250_000
    within = predict(api, jpeg_bytes(size=(500, 500), seed=2))
    assert within.status_code == 200 and len(within.json()["predictions"]) == 1, "the model answers within the limit"
    rows = (Coin.objects.count(), Prediction.objects.count())

    # when a back photo of 600 x 600 = 360,000 pixels is sent
    response = predict(api, jpeg_bytes(size=(600, 600), seed=2))

    # then it is refused as too large, naming the input, its size and the limit; nothing more was stored
    assert_pixel_refusal(response, field="inputs[0].back_image_base64", pixels="360,000 pixels", limit="250,000 pixels")
    assert (Coin.objects.count(), Prediction.objects.count()) == rows


def test_predict_refuses_a_photo_over_the_default_50_megapixel_limit_with_413_while_a_model_serves(
    api, production_model, settings
):
    # given a model in Production and the deployed limit (50 MP)
    assert settings.COINSITE_MAX_IMAGE_PIXELS == 50_000_000

    # when a back photo of 8,000 x 6,300 = 50.4 megapixels (a few hundred kB) is sent
    response = predict(api, flat_png(8000, 6300))

    # then it is refused by the pixel limit itself (not the decode budget, not "no model")
    assert_pixel_refusal(
        response, field="inputs[0].back_image_base64", pixels="50.4 megapixels", limit="50.0 megapixels"
    )
    assert not Coin.objects.exists()


def test_coin_upload_refuses_a_photo_over_the_pixel_limit_with_413_while_a_model_serves(
    api, production_model, settings
):
    settings.COINSITE_MAX_IMAGE_PIXELS = 250_000

    def upload(back: bytes):
        return api.post(
            "/api/coins/",
            {
                "front_image": SimpleUploadedFile("front.jpg", jpeg_bytes(seed=1), content_type="image/jpeg"),
                "back_image": SimpleUploadedFile("back.jpg", back, content_type="image/jpeg"),
            },
            format="multipart",
        )

    assert upload(jpeg_bytes(size=(500, 500), seed=2)).status_code in (201, 202)
    before = Coin.objects.count()

    response = upload(jpeg_bytes(size=(600, 600), seed=2))

    assert_pixel_refusal(response, field="back_image", pixels="360,000 pixels", limit="250,000 pixels")
    assert Coin.objects.count() == before
