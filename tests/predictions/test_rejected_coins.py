"""A photo the model rejected (not a coin, date not readable) shows no year anywhere: not on the answer card, not in
status.json, not in /api/coins/; the card says what was found and how to retake the photos (issue 21)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions.models import Coin
from predictions.verdicts import coin_verdict
from registry import serving
from tests.factories import CoinFactory, PredictionFactory
from tests.pages import page_text
from training.ml import negatives

pytestmark = pytest.mark.django_db


def _rejected(owner, reason: str = "not_a_coin") -> Coin:
    return PredictionFactory(
        coin=CoinFactory(owner=owner, status=Coin.Status.PREDICTED),
        year=1999,
        interval_low=1933,
        interval_high=1999,
        interval_level=0.95,
        alternatives=[{"year": 1999, "p": 0.02}],
        rejected=reason,
    ).coin


@pytest.mark.parametrize(
    ("reason", "headline", "advice"),
    [("not_a_coin", "Not a coin", "does not look like a coin"), ("unreadable", "Date not readable", "cannot be read")],
)
def test_answer_card_of_a_rejected_photo_says_what_was_found_and_gives_no_year(
    client, collector, reason, headline, advice
):
    coin = _rejected(collector, reason)
    client.force_login(collector)

    text = page_text(client.get(reverse("coin-detail", kwargs={"coin_id": coin.id})))

    assert f"No year given {headline}" in text and advice in text and "Retake the photos" in text
    assert "Predicted" not in text and "cross-validated MAE" not in text
    assert "1999" not in text and "1933" not in text
    assert f"Checked by coin-year v{coin.latest_prediction.model_version.version}" in text


def test_status_json_of_a_rejected_photo_has_no_year(client, collector):
    coin = _rejected(collector)
    client.force_login(collector)

    data = client.get(reverse("coin-status", kwargs={"coin_id": coin.id})).json()

    assert data["year"] is data["low"] is data["high"] is None
    assert (data["verdict"], data["verdict_label"], data["rejected"]) == ("not_a_coin", "Not a coin", "not_a_coin")
    assert "1999" not in data["year_html"] + data["notes_html"] and "Not a coin" in data["year_html"]


def test_api_coins_of_a_rejected_photo_have_no_year(collector):
    coin = _rejected(collector)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")

    listed = api.get("/api/coins/").json()["results"][0]
    one = api.get(f"/api/coins/{coin.id}/").json()

    for body in (listed, one):
        assert body["year"] is None
        [prediction] = body["predictions"]
        assert prediction["rejected"] == "not_a_coin" and "does not look like a coin" in prediction["message"]
        assert [prediction[k] for k in ("year", "interval_low", "interval_high", "interval_level")] == [None] * 4
        assert prediction["alternatives"] == []


def test_alternatives_under_half_a_percent_are_left_off_the_card(client, collector):
    coin = PredictionFactory(
        coin=CoinFactory(owner=collector, status=Coin.Status.PREDICTED),
        alternatives=[{"year": 1874, "p": 0.993}, {"year": 1876, "p": 0.006}, {"year": 1986, "p": 0.001}],
    ).coin
    client.force_login(collector)

    text = page_text(client.get(reverse("coin-detail", kwargs={"coin_id": coin.id})))

    assert "How sure: 1874 99 % · 1876 1 %" in text and "1986" not in text


@pytest.mark.slow
def test_uploading_a_photo_of_fur_is_not_called_dated(client, collector, reader_production_model, transactional_db):
    # given a model in production that judges the photo not a coin
    serving.get_batcher().holder.current().calibration["calibration"]["coin_threshold"] = 1.01
    cat = negatives.generate_negative_jpeg(5, kinds=("fur",))
    client.force_login(collector)

    # when the collector uploads it (Celery eager, no test transaction: predicted on commit, inside the request, as
    # under `make run`)
    response = client.post(
        reverse("coin-upload"),
        {
            "front_image": SimpleUploadedFile("f.jpg", cat, "image/jpeg"),
            "back_image": SimpleUploadedFile("b.jpg", cat, "image/jpeg"),
        },
    )

    # then the banner says no coin was found, not "dated"
    text = page_text(client.get(response["Location"]))
    assert Coin.objects.get().latest_prediction.rejected == "not_a_coin"
    assert "found no coin in them, so there is no year" in text and "received and dated" not in text


def test_api_coins_filter_by_verdict_lists_the_non_coins_apart(collector):
    dated = PredictionFactory(coin=CoinFactory(owner=collector, status=Coin.Status.PREDICTED)).coin
    cat = _rejected(collector)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")

    ids = {
        key: [c["id"] for c in api.get("/api/coins/", {"verdict": key}).json()["results"]]
        for key in ("dated", "not_a_coin")
    }
    refused = api.get("/api/coins/", {"verdict": "predicted"})

    assert ids == {"dated": [dated.id], "not_a_coin": [cat.id]}
    assert refused.status_code == 400 and refused.json()["field"] == "verdict"


def test_a_coin_a_curator_marked_not_a_coin_is_listed_as_not_a_coin_though_the_model_read_a_year(collector):
    read_by_model = PredictionFactory(coin=CoinFactory(owner=collector, status=Coin.Status.PREDICTED), year=1874).coin
    Coin.objects.filter(pk=read_by_model.pk).update(not_a_coin=True)
    read_by_model.refresh_from_db()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")

    ids = {
        key: [c["id"] for c in api.get("/api/coins/", {"verdict": key}).json()["results"]]
        for key in ("dated", "not_a_coin")
    }

    assert ids == {"dated": [], "not_a_coin": [read_by_model.id]}
    assert coin_verdict(read_by_model).key == "not_a_coin"
