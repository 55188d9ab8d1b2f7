"""The DRF API: authentication, /api/predict, the coin endpoints and /api/models/production."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions.models import Coin
from registry import serving
from tests.factories import CoinFactory, ModelVersionFactory, PredictionFactory, jpeg_bytes
from training.ml import synthetic

pytestmark = pytest.mark.django_db


# --- helpers ---------------------------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def serving_json(*pairs: tuple[bytes, bytes]) -> dict:
    return {"inputs": [{"front_image_base64": b64(front), "back_image_base64": b64(back)} for front, back in pairs]}


def files_under(root: Path) -> list[Path]:
    return [path for path in Path(root).rglob("*") if path.is_file()] if Path(root).exists() else []


def photo(data: bytes, name: str = "coin.jpg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


@pytest.fixture
def api(collector) -> APIClient:
    """A client authenticated the way API clients are: `Authorization: Token <key>`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")
    return client


def plain_jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (128, 128), (value, value, value)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def two_coins_predicted_apart(production_model):
    """Two photo pairs the production model tells apart (so an order mix-up cannot go unnoticed), with their years
    when predicted alone."""
    serving.reset()
    candidates = [(front, back) for front, back, _year in synthetic.iter_coins(8, seed=5)]
    candidates += [(plain_jpeg(0), plain_jpeg(0)), (plain_jpeg(255), plain_jpeg(255))]
    years = [serving.predict_pairs([pair])[0].year for pair in candidates]
    for i, year in enumerate(years):
        for j in range(i + 1, len(years)):
            if years[j] != year:
                return (candidates[i], year), (candidates[j], years[j])
    pytest.fail(
        f"this session's tiny production model answers {years[0]} for every input (even black and white): "
        "the ordering test would prove nothing"
    )


# --- authentication --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/api/predict"),
        ("get", "/api/coins/"),
        ("post", "/api/coins/"),
        ("get", "/api/coins/1/"),
        ("delete", "/api/coins/1/"),
        ("get", "/api/models/production"),
    ],
)
def test_api_refuses_anonymous_clients_with_401_json(method, url):
    # given no credentials / when calling the endpoint
    response = getattr(APIClient(), method)(url)

    # then 401 in the API's error shape, with the scheme to use
    assert response.status_code == 401
    assert response.json() == {"error": "Authentication credentials were not provided.", "field": None}
    assert response["WWW-Authenticate"] == "Token"
    assert Coin.objects.count() == 0


def test_api_refuses_an_unknown_token():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")

    response = client.get("/api/coins/")

    assert response.status_code == 401
    assert response.json() == {"error": "Invalid token.", "field": None}


def test_token_authentication_gives_the_callers_own_coins(api, collector):
    # given a coin of the token's user
    coin = CoinFactory(owner=collector)

    # when listing with the token
    response = api.get(reverse("api-coin-list"))

    # then
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [coin.id]


def test_session_authentication_works_too(client, collector):
    client.force_login(collector)

    response = client.get("/api/coins/")

    assert response.status_code == 200


# --- POST /api/predict -----------------------------------------------------------------------------------------------


def test_predict_answers_one_year_per_input_in_input_order(api, two_coins_predicted_apart):
    # given two coins the model predicts differently, alone
    (first, first_year), (second, second_year) = two_coins_predicted_apart

    # when sending them in both orders
    forward = api.post("/api/predict", serving_json(first, second), format="json")
    backward = api.post("/api/predict", serving_json(second, first), format="json")

    # then the answer follows the order of the inputs: {"predictions": [...], "details": [...]}
    assert forward.status_code == 200, forward.json()
    assert set(forward.json()) == {"predictions", "details"}
    assert forward.json()["predictions"] == [first_year, second_year]
    assert backward.json()["predictions"] == [second_year, first_year]
    assert [d["year"] for d in forward.json()["details"]] == [first_year, second_year]


def test_predict_keeps_every_input_as_an_api_coin_with_its_prediction(api, collector, production_model, settings):
    # given two coin photo pairs
    pairs = [(front, back) for front, back, _year in synthetic.iter_coins(2, seed=11)]
    serving.reset()

    # when predicting them
    response = api.post(reverse("api-predict"), serving_json(*pairs), format="json")

    # then both are stored as the caller's coins (source api), in input order, each with the prediction answered
    assert response.status_code == 200, response.json()
    coin_ids = [int(value) for value in response["X-Coin-Ids"].split(",")]
    coins = [Coin.objects.get(pk=coin_id) for coin_id in coin_ids]
    assert len(coins) == 2
    for coin, (front, back), year in zip(coins, pairs, response.json()["predictions"], strict=True):
        assert coin.owner == collector
        assert coin.source == Coin.Source.API
        assert coin.status == Coin.Status.PREDICTED
        assert (coin.front_sha256, coin.back_sha256) == (
            hashlib.sha256(front).hexdigest(),
            hashlib.sha256(back).hexdigest(),
        )
        assert coin.front_image.read() == front and coin.back_image.read() == back
        [prediction] = coin.predictions.all()
        assert prediction.year == year
        assert prediction.interval_low <= year <= prediction.interval_high
        assert prediction.model_version.version == serving.production_version_loaded()
        assert prediction.latency_ms > 0
    assert len(files_under(settings.MEDIA_ROOT)) == 8  # 4 photos and their thumbnails
    # and they are in the caller's coin list like any upload
    listed = api.get("/api/coins/").json()["results"]
    assert {item["id"] for item in listed} == set(coin_ids)
    assert all(item["source"] == "api" and item["predictions"] for item in listed)


def test_predict_accepts_a_trailing_slash(api, production_model):
    serving.reset()
    [(front, back, _year)] = synthetic.iter_coins(1, seed=3)

    response = api.post("/api/predict/", serving_json((front, back)), format="json")

    assert response.status_code == 200, response.json()
    assert len(response.json()["predictions"]) == 1


def test_predict_without_a_production_model_is_503_and_stores_nothing(api, no_model, settings):
    # given valid photos but no model with alias production
    payload = serving_json((jpeg_bytes(seed=1), jpeg_bytes(seed=2)))

    # when predicting
    response = api.post("/api/predict", payload, format="json")

    # then a clear 503 and nothing was kept
    assert response.status_code == 503
    body = response.json()
    assert body["field"] is None
    assert "no model is in production" in body["error"].lower()
    assert Coin.objects.count() == 0
    assert files_under(settings.MEDIA_ROOT) == []


# --- /api/coins/ -----------------------------------------------------------------------------------------------------


def test_coin_list_shows_only_the_callers_coins_paginated(api, collector, other_collector):
    # given 22 coins of the caller and one of someone else
    mine = [CoinFactory(owner=collector) for _ in range(22)]
    CoinFactory(owner=other_collector)

    # when listing both pages
    first = api.get("/api/coins/").json()
    second = api.get("/api/coins/", {"page": 2}).json()

    # then 20 + 2 of the caller's own, newest first
    assert first["count"] == 22
    assert len(first["results"]) == 20 and first["next"] and first["previous"] is None
    listed = [item["id"] for item in first["results"] + second["results"]]
    assert listed == [coin.id for coin in reversed(mine)]


def test_coin_list_filters_by_year_range_and_status(api, collector):
    old = PredictionFactory(coin=CoinFactory(owner=collector, status=Coin.Status.PREDICTED), year=1780).coin
    PredictionFactory(coin=CoinFactory(owner=collector, status=Coin.Status.PREDICTED), year=1950)
    pending = CoinFactory(owner=collector)

    by_year = api.get("/api/coins/", {"year_min": 1750, "year_max": 1800}).json()["results"]
    by_status = api.get("/api/coins/", {"status": "pending"}).json()["results"]

    assert [item["id"] for item in by_year] == [old.id]
    assert [item["id"] for item in by_status] == [pending.id]


def test_coin_list_rejects_a_bad_filter_naming_it(api):
    response = api.get("/api/coins/", {"year_min": "soon"})

    assert response.status_code == 400
    assert response.json() == {"error": "year_min: A valid integer is required.", "field": "year_min"}


def test_coin_list_beyond_the_last_page_is_404_json(api):
    response = api.get("/api/coins/", {"page": 99})

    assert response.status_code == 404
    assert response.json()["field"] is None and "page" in response.json()["error"].lower()


def test_coin_detail_shows_predictions_verified_year_and_image_urls(api, collector):
    # given a verified coin with two predictions by two model versions
    coin = CoinFactory(owner=collector, status=Coin.Status.PREDICTED, verified_year=1871, verified_at=timezone.now())
    older = PredictionFactory(coin=coin, year=1860, model_version=ModelVersionFactory(version=1))
    newer = PredictionFactory(
        coin=coin,
        year=1869,
        model_version=ModelVersionFactory(version=2),
        interval_level=0.95,
        alternatives=[{"year": 1869, "p": 0.6}, {"year": 1896, "p": 0.2}],
    )
    rejected = PredictionFactory(coin=CoinFactory(owner=collector), rejected="not_a_coin")

    # when fetching it
    response = api.get(reverse("api-coin-detail", kwargs={"id": coin.id}))

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == coin.id
    assert body["verified_year"] == 1871 and body["year"] == 1871
    assert body["status"] == "predicted" and body["source"] == "upload"
    assert [(p["year"], p["model_version"]) for p in body["predictions"]] == [(1869, 2), (1860, 1)]
    assert set(body["predictions"][0]) == {
        "year",
        "interval_low",
        "interval_high",
        "interval_level",
        "alternatives",
        "rejected",
        "message",
        "model_version",
        "latency_ms",
        "created_at",
    }
    # the answer card: the most likely years with their probabilities, or why there is none and what to do
    assert body["predictions"][0]["alternatives"] == [{"year": 1869, "p": 0.6}, {"year": 1896, "p": 0.2}]
    assert body["predictions"][0]["interval_level"] == 0.95 and body["predictions"][0]["rejected"] == ""
    card = api.get(reverse("api-coin-detail", kwargs={"id": rejected.coin.id})).json()["predictions"][0]
    assert card["rejected"] == "not_a_coin" and "does not look like a coin" in card["message"]
    assert newer.created_at >= older.created_at
    try:
        front_path = reverse("coin-image", kwargs={"coin_id": coin.id, "side": "front"})
    except Exception:  # the image view is routed by the pages engineer
        front_path = None
    if front_path is None:
        assert body["front_image_url"] is None
    else:
        assert body["front_image_url"] == f"http://testserver{front_path}"
        assert body["back_image_url"].endswith(reverse("coin-image", kwargs={"coin_id": coin.id, "side": "back"}))


def test_coin_of_another_collector_is_404(api, other_collector, settings):
    # given someone else's coin
    theirs = CoinFactory(owner=other_collector)
    url = reverse("api-coin-detail", kwargs={"id": theirs.id})

    # when reading or deleting it
    read = api.get(url)
    delete = api.delete(url)

    # then it does not exist for the caller, and it is still there
    assert read.status_code == delete.status_code == 404
    assert read.json() == {"error": "No Coin matches the given query.", "field": None}
    assert Coin.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize("raw_id", ["abc", "0", "99999999999999999999999999", "-1", "1.5", "1%0A", "%0A", "a%2Fb"])
def test_coin_detail_with_an_id_that_is_no_coin_is_404_json(api, raw_id):
    response = api.get(f"/api/coins/{raw_id}/")

    assert response.status_code == 404
    assert response.json()["field"] is None


def test_coin_upload_answers_202_with_the_pending_coin(api, collector, settings):
    # given two photos
    front, back = jpeg_bytes(seed=1), jpeg_bytes(color=(20, 40, 60), seed=2)

    # when uploading them (the prediction task is enqueued on commit, not run in this test)
    response = api.post(
        "/api/coins/",
        {"front_image": photo(front), "back_image": photo(back), "notes": "from grandma"},
        format="multipart",
    )

    # then the coin is stored pending, with its photos
    assert response.status_code == 202, response.json()
    body = response.json()
    coin = Coin.objects.get(pk=body["id"])
    assert coin.owner == collector and coin.source == Coin.Source.API and coin.notes == "from grandma"
    assert body["status"] == "pending" and body["predictions"] == [] and body["year"] is None
    assert coin.front_image.read() == front and coin.back_image.read() == back
    assert len(files_under(settings.MEDIA_ROOT)) == 4  # 2 photos and their thumbnails


def test_coin_upload_gets_its_prediction_asynchronously(api, production_model, django_capture_on_commit_callbacks):
    # given a production model and the on-commit prediction task running (eager Celery)
    serving.reset()
    [(front, back, _year)] = synthetic.iter_coins(1, seed=21)

    # when uploading
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/coins/", {"front_image": photo(front), "back_image": photo(back)}, format="multipart")

    # then the coin has a prediction by the production version
    assert response.status_code == 202
    detail = api.get(f"/api/coins/{response.json()['id']}/").json()
    assert detail["status"] == "predicted"
    assert detail["predictions"][0]["model_version"] == serving.production_version_loaded()


def test_coin_delete_removes_the_coin_and_its_photos(api, collector, settings, django_capture_on_commit_callbacks):
    # given a coin with its two photo files
    coin = CoinFactory(owner=collector)
    assert len(files_under(settings.MEDIA_ROOT)) == 2

    # when deleting it
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/api/coins/{coin.id}/")

    # then the row and the files are gone
    assert response.status_code == 204
    assert not Coin.objects.filter(pk=coin.pk).exists()
    assert files_under(settings.MEDIA_ROOT) == []


# --- /api/models/production ------------------------------------------------------------------------------------------


def test_production_model_shows_version_metrics_and_promotion_time(api):
    # given a production version and an older one
    ModelVersionFactory(version=1)
    promoted_at = timezone.now()
    ModelVersionFactory(
        version=2,
        is_production=True,
        aliases=["production"],
        promoted_at=promoted_at,
        metrics={"mae": 6.25, "baseline_mae": 80.0, "r2": 0.91},
    )

    # when asking which model serves
    response = api.get(reverse("api-model-production"))

    # then version 2, with its metrics and when it was promoted
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 2 and body["name"] == "coin-year" and body["aliases"] == ["production"]
    assert body["metrics"] == {"mae": 6.25, "baseline_mae": 80.0, "r2": 0.91}
    assert body["promoted_at"] == promoted_at.isoformat().replace("+00:00", "Z")


def test_production_model_is_404_when_none_is_in_production(api):
    ModelVersionFactory(version=1)

    response = api.get("/api/models/production")

    assert response.status_code == 404
    assert response.json() == {"error": "No model is in production yet", "field": None}


# --- schema ----------------------------------------------------------------------------------------------------------


def test_schema_documents_the_api_with_its_error_shape(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    schema = response.json()
    assert set(schema["paths"]) == {
        "/api/predict",
        "/api/coins/",
        "/api/coins/{id}/",
        "/api/models/production",
        "/api/token",
    }
    predict = schema["paths"]["/api/predict"]["post"]
    assert set(predict["responses"]) >= {"200", "400", "401", "413", "415", "503"}
    assert predict["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert schema["components"]["schemas"]["Error"]["required"] == ["error", "field"]
