"""/api/predict with a date-reading model: the parallel details list, rejections, and what the rows keep."""

from __future__ import annotations

import base64

import mlflow
import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions.models import Coin
from registry import serving
from tests.training.ml.ocr_photos import dated_coin
from training.ml import negatives, ocr, synthetic

pytestmark = pytest.mark.django_db


def serving_json(pairs) -> dict:
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return {"inputs": [{"front_image_base64": b64(front), "back_image_base64": b64(back)} for front, back in pairs]}


@pytest.fixture
def api(collector) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")
    return client


def test_predict_answers_details_parallel_to_predictions_and_stores_them(api, reader_production_model):
    # given two generated coins and a date-reading model in production that answers every input (the tiny reader
    # reads 64 px photos too poorly to pass its own "readable" threshold, which has its own test below)
    loaded = serving.get_batcher().holder.current()
    loaded.calibration["calibration"].update(coin_threshold=0.0, read_threshold=0.0)
    pairs = [(front, back) for front, back, _year in synthetic.iter_coins(2, seed=21)]

    # when predicting them
    response = api.post(reverse("api-predict"), serving_json(pairs), format="json")

    # then each input has a year and a details entry with its interval, level, coin score and ranked alternatives
    assert response.status_code == 200, response.json()
    body = response.json()
    assert len(body["predictions"]) == len(body["details"]) == 2
    coins = [Coin.objects.get(pk=int(i)) for i in response["X-Coin-Ids"].split(",")]
    for year, detail, coin in zip(body["predictions"], body["details"], coins, strict=True):
        prediction = coin.predictions.get()
        assert "rejected" not in detail and prediction.rejected == ""
        assert year == detail["year"] == prediction.year
        assert detail["low"] <= year <= detail["high"]
        assert (detail["low"], detail["high"]) == (prediction.interval_low, prediction.interval_high)
        assert detail["level"] == pytest.approx(loaded.config.interval_level) == prediction.interval_level
        assert 0 <= detail["coin_score"] <= 1 and detail["coin_score"] == pytest.approx(prediction.coin_score)
        probabilities = [a["p"] for a in detail["alternatives"]]
        assert probabilities == sorted(probabilities, reverse=True) and len(probabilities) == 3
        assert detail["alternatives"][0]["year"] == year
        assert prediction.alternatives == detail["alternatives"]


def test_an_input_judged_not_a_coin_gets_null_and_the_reason(api, reader_production_model, client, collector):
    # given a model whose coin threshold no photo reaches
    loaded = serving.get_batcher().holder.current()
    loaded.calibration["calibration"]["coin_threshold"] = 1.01
    cat = negatives.generate_negative_jpeg(5, kinds=("fur",))

    # when predicting
    response = api.post(reverse("api-predict"), serving_json([(cat, cat)]), format="json")

    # then no year, the reason and what to do; the row keeps the verdict; the coin page says so instead of a year
    assert response.status_code == 200, response.json()
    assert response.json()["predictions"] == [None]
    [detail] = response.json()["details"]
    assert detail["rejected"] == "not_a_coin" and "does not look like a coin" in detail["message"]
    coin = Coin.objects.get(pk=int(response["X-Coin-Ids"]))
    assert coin.predictions.get().rejected == "not_a_coin"
    client.force_login(collector)
    page = client.get(reverse("coin-detail", args=[coin.pk])).content.decode()
    assert "Not a coin" in page and "does not look like a coin" in page
    status = client.get(reverse("coin-status", args=[coin.pk])).json()
    assert status["rejected"] == "not_a_coin" and "Not a coin" in status["year_html"]


def test_schema_documents_the_details_with_an_example(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "PredictionDetail" in schema["components"]["schemas"]
    detail = schema["components"]["schemas"]["PredictionDetail"]["properties"]
    assert {"year", "low", "high", "level", "coin_score", "alternatives", "rejected", "message"} <= set(detail)
    examples = schema["paths"]["/api/predict"]["post"]["responses"]["200"]["content"]["application/json"]["examples"]
    example = next(iter(examples.values()))["value"]
    assert example["predictions"][1] is None and example["details"][1]["rejected"] == "not_a_coin"


def test_the_registered_pyfunc_answers_years_and_on_request_the_same_details(reader_production_model, settings):
    # given the date reader registered in production / when loaded as a client loads it
    served = mlflow.pyfunc.load_model("models:/coin-year@production")
    pairs = [(front, back) for front, back, _year in synthetic.iter_coins(3, seed=23)]
    inputs = serving_json(pairs)["inputs"]

    years = served.predict(inputs)
    details = served.unwrap_python_model().predict(inputs, params={"details": True})

    # then one year (or None) per input, and details parallel to them with the same year
    assert len(years) == len(details) == 3
    for year, detail in zip(years, details, strict=True):
        assert (year is None) == ("rejected" in detail)
        if year is not None:
            assert type(year) is int and detail["year"] == year and detail["low"] <= year <= detail["high"]
            assert len(detail["alternatives"]) == 3


@pytest.mark.skipif(not ocr.available(), reason="rapidocr-onnxruntime is not installed")
def test_serving_api_and_pyfunc_say_alike_which_reader_answered_and_what_the_ocr_read(api, reader_production_model):
    # given the tiny reader in production (unsure of everything, so the OCR runs) and a coin with a legible date
    pairs = [(dated_coin("1874"), dated_coin("1874", turn=180))] + [
        (front, back) for front, back, _year in synthetic.iter_coins(1, seed=25)
    ]
    inputs = serving_json(pairs)["inputs"]

    # when asking in process, through /api/predict and the registered pyfunc (what `mlflow models serve` runs)
    in_process = [result.details for result in serving.predict_pairs(pairs)]
    response = api.post(reverse("api-predict"), {"inputs": inputs}, format="json")
    served = mlflow.pyfunc.load_model("models:/coin-year@production")
    by_pyfunc = served.unwrap_python_model().predict(inputs, params={"details": True})

    # then all three answer the same details, the readers and the OCR's reading included, and the rows keep them
    assert response.status_code == 200, response.json()
    assert in_process == response.json()["details"] == by_pyfunc
    dated = by_pyfunc[0]
    assert dated["ocr"]["year"] == 1874 and dated["ocr"]["photos"] == 2 and "ocr" in dated["readers"]
    assert dated.get("year") == 1874 and response.json()["predictions"][0] == 1874
    coin = Coin.objects.get(pk=int(response["X-Coin-Ids"].split(",")[0]))
    prediction = coin.predictions.get()
    assert prediction.readers == dated["readers"] and prediction.ocr_reading == dated["ocr"]
