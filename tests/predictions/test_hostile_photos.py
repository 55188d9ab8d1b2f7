"""Hostile photos on every path that decodes one: the upload page, POST /api/predict, POST /api/coins/, the
prediction task, a re-score and loading a training dataset. Each is refused with the same 4xx (or the same error
kept on the coin), for under 1 s of CPU and 300 MB of RSS growth, counting the decode helper process.

Run with ``-s`` to see the figures (CPU seconds and RSS growth per photo and path)."""

from __future__ import annotations

import base64
import threading
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions import inference
from predictions.models import Coin
from tests.factories import CoinFactory, jpeg_bytes
from tests.hostile_photos import HOSTILE, Cost, cost_of
from training.ml import decoding, images
from training.ml.config import seed_regression
from training.ml.data import CoinPairDataset, CoinSample

pytestmark = pytest.mark.django_db

CPU_LIMIT_S = 1.0
RSS_LIMIT_MB = 300.0
CASES = list(HOSTILE)


def expected_refusal(name: str) -> images.ImageError:
    """What the library says of the photo: every path must answer the same status and message."""
    try:
        decoding.decode(HOSTILE[name](), target=320)
    except images.ImageError as error:
        return error
    raise AssertionError(f"{name} was accepted by the library")


def within_limits(name: str, path: str, cost: Cost) -> None:
    print(f"\n  {name} via {path}: {cost}")
    assert cost.cpu_seconds < CPU_LIMIT_S, (path, str(cost))
    assert cost.rss_growth_mb < RSS_LIMIT_MB, (path, str(cost))


@pytest.fixture
def api(collector) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")
    return client


@pytest.mark.parametrize("name", CASES)
def test_upload_page_refuses_a_hostile_photo_cheaply(client, collector, name):
    client.force_login(collector)
    refusal = expected_refusal(name)
    data = HOSTILE[name]()

    def post():
        form = {
            "front_image": SimpleUploadedFile("front.jpg", jpeg_bytes(seed=1)),
            "back_image": SimpleUploadedFile("back.bin", data),
        }
        return client.post("/coins/upload/", form)

    cost = cost_of(post)

    within_limits(name, "upload page", cost)
    assert cost.outcome.status_code == refusal.http_status
    assert refusal.message in cost.outcome.content.decode()
    assert not Coin.objects.exists()


@pytest.mark.parametrize("name", CASES)
def test_api_predict_refuses_a_hostile_photo_cheaply(api, production_model, name):
    refusal = expected_refusal(name)
    body = {
        "inputs": [
            {
                "front_image_base64": base64.b64encode(jpeg_bytes(seed=1)).decode(),
                "back_image_base64": base64.b64encode(HOSTILE[name]()).decode(),
            }
        ]
    }

    cost = cost_of(lambda: api.post("/api/predict", body, format="json"))

    within_limits(name, "/api/predict", cost)
    assert cost.outcome.status_code == refusal.http_status, cost.outcome.content[:300]
    assert refusal.message in cost.outcome.json()["error"]
    assert not Coin.objects.exists()


@pytest.mark.parametrize("name", CASES)
def test_api_coins_refuses_a_hostile_photo_cheaply(api, name):
    refusal = expected_refusal(name)
    form = {
        "front_image": SimpleUploadedFile("front.jpg", jpeg_bytes(seed=1)),
        "back_image": SimpleUploadedFile("back.bin", HOSTILE[name]()),
    }

    cost = cost_of(lambda: api.post("/api/coins/", form, format="multipart"))

    within_limits(name, "/api/coins/", cost)
    assert cost.outcome.status_code == refusal.http_status, cost.outcome.content[:300]
    assert refusal.message in cost.outcome.content.decode()
    assert not Coin.objects.exists()


@pytest.mark.parametrize("rescore", [False, True], ids=["prediction task", "re-score"])
@pytest.mark.parametrize("name", CASES)
def test_a_stored_hostile_photo_fails_its_coin_cheaply_when_predicted_or_rescored(production_model, name, rescore):
    """A photo stored before these checks existed (or imported another way) costs no more when predicted again."""
    refusal = expected_refusal(name)
    coin = CoinFactory(back_image=ContentFile(HOSTILE[name](), name="back.bin"))

    cost = cost_of(lambda: inference.coin_predict(coin_id=coin.pk, force=rescore))

    within_limits(name, "re-score" if rescore else "prediction task", cost)
    coin.refresh_from_db()
    assert coin.status == Coin.Status.FAILED
    assert refusal.message[:200] in coin.status_detail


@pytest.mark.parametrize("name", CASES)
def test_training_refuses_a_hostile_photo_in_its_dataset_cheaply(settings, name):
    refusal = expected_refusal(name)
    samples = [CoinSample(front=jpeg_bytes(seed=1), back=HOSTILE[name](), year=1900, key="coin 1")]
    dataset = CoinPairDataset(samples, seed_regression(), train=False, limits=settings.COINSITE_PHOTO_LIMITS)

    cost = cost_of(dataset.preload)

    within_limits(name, "training dataset", cost)
    assert isinstance(cost.outcome, images.ImageError) and type(cost.outcome) is type(refusal)


def test_the_cost_counts_the_calls_own_cpu_and_not_a_thread_an_earlier_test_left_running():
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(10_000))

    background = threading.Thread(target=spin, name="training-run-1", daemon=True)
    background.start()
    try:
        idle = cost_of(lambda: time.sleep(0.5))
        busy = cost_of(lambda: sum(range(3_000_000)))
    finally:
        stop.set()
        background.join()

    assert idle.cpu_seconds < 0.2, str(idle)
    assert busy.cpu_seconds > 0.02, str(busy)
