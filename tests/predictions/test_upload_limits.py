"""Uploads cannot fill the disk: the upload page is throttled like POST /api/coins/ (one limit per collector), and
each collector's photos stop at COINSITE_STORAGE_QUOTA_BYTES with a 413 that says so, nothing stored past it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions.models import Coin
from tests.factories import jpeg_bytes

pytestmark = pytest.mark.django_db


def form(seed: int) -> dict:
    return {
        "front_image": SimpleUploadedFile("f.jpg", jpeg_bytes(seed=2 * seed)),
        "back_image": SimpleUploadedFile("b.jpg", jpeg_bytes(seed=2 * seed + 1, color=(90, 90, 110))),
    }


def files_under(root) -> list[Path]:
    return [path for path in Path(root).rglob("*") if path.is_file()] if Path(root).exists() else []


def test_sixty_uploads_a_minute_from_one_account_are_throttled_at_the_rate(client, collector, no_model):
    client.force_login(collector)

    statuses = [client.post("/coins/upload/", form(seed)).status_code for seed in range(60)]

    assert statuses[:30] == [302] * 30
    assert statuses[30:] == [429] * 30
    assert Coin.objects.count() == 30
    refused = client.post("/coins/upload/", form(99), HTTP_ACCEPT="application/json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "at most 30 per minute" in refused.json()["errors"]["__all__"][0]


def test_the_upload_page_and_the_api_share_one_limit(client, collector, no_model, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"upload": "3/min"}}
    client.force_login(collector)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")

    pages = [client.post("/coins/upload/", form(seed)).status_code for seed in range(2)]
    calls = [api.post("/api/coins/", form(10 + seed), format="multipart").status_code for seed in range(2)]

    assert pages == [302, 302] and calls == [202, 429]


@pytest.fixture
def small_quota(settings):
    one_coin = len(jpeg_bytes(seed=0)) + len(jpeg_bytes(seed=1, color=(90, 90, 110)))
    settings.COINSITE_STORAGE_QUOTA_BYTES = int(2.5 * one_coin)  # room for two coins, not three
    return settings


def test_the_quota_refuses_the_upload_page_with_a_clear_413_and_stores_nothing(
    client, collector, no_model, small_quota
):
    client.force_login(collector)
    assert [client.post("/coins/upload/", form(seed)).status_code for seed in range(2)] == [302, 302]
    stored = files_under(small_quota.MEDIA_ROOT)

    refused = client.post("/coins/upload/", form(3), HTTP_ACCEPT="application/json")

    assert refused.status_code == 413
    assert "storage quota" in refused.json()["errors"]["__all__"][0]
    assert Coin.objects.count() == 2 and files_under(small_quota.MEDIA_ROOT) == stored
    page = client.post("/coins/upload/", form(4))
    assert page.status_code == 413 and "storage quota" in page.content.decode()


def test_the_quota_refuses_the_api_with_a_clear_413_and_stores_nothing(collector, production_model, small_quota):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")
    assert [api.post("/api/coins/", form(seed), format="multipart").status_code for seed in range(2)] == [202, 202]
    stored = files_under(small_quota.MEDIA_ROOT)
    pair = {
        "front_image_base64": base64.b64encode(jpeg_bytes(seed=50)).decode(),
        "back_image_base64": base64.b64encode(jpeg_bytes(seed=51)).decode(),
    }

    coins = api.post("/api/coins/", form(3), format="multipart")
    predict = api.post("/api/predict", {"inputs": [pair]}, format="json")

    for response in (coins, predict):
        assert response.status_code == 413, response.content[:300]
        assert response.json()["error"].startswith("your photos take") and "storage quota" in response.json()["error"]
    assert Coin.objects.count() == 2 and files_under(small_quota.MEDIA_ROOT) == stored
