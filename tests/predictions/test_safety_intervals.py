"""The interval a collector sees and the one stored are the ensemble's own: rounded outward to whole years, never
wider. Checked for /api/predict (its details and the Prediction rows it stores) and for a stored coin predicted the
way uploads are, against the registered version scored directly (tracking.load_predictor, as evaluation does).
"""

from __future__ import annotations

import base64
import dataclasses

import numpy as np
import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions.inference import coin_predict
from predictions.models import Coin, Prediction
from registry import serving
from tests.factories import CoinFactory
from training.ml import images, synthetic, tracking

pytestmark = pytest.mark.django_db

NARROW_MODEL = "coin-year-narrow-interval"
NARROW_HALFWIDTH = 3.0


@pytest.fixture(scope="module")
def narrow_interval_version(tiny_fit, registered_tiny_versions):
    """The session's tiny regression model registered with a calibrated halfwidth of 3 years (under a name of its
    own): its intervals sit inside the year range, so a widening cannot hide behind clamping to year_min/year_max.
    (The tiny model as fitted has intervals as wide as the range; the tiny date reader answers "unreadable" for
    every generated coin, and serves no interval then.)"""
    narrow = dataclasses.replace(
        tiny_fit, calibration=dataclasses.replace(tiny_fit.calibration, base=NARROW_HALFWIDTH, spread_coef=0.0)
    )
    with tracking.TrainingTracker(narrow.config, experiment="coin-year", run_name="tiny-narrow") as tracker:
        tracker.log_result(narrow, manifest=[])
        tracker.log_model(narrow)
        return tracker.register(NARROW_MODEL)


@pytest.fixture
def narrow_production_model(narrow_interval_version, isolated_mlflow, settings):
    from registry.gateway import mlflow_ready

    settings.MLFLOW_MODEL_NAME = NARROW_MODEL
    mlflow_ready()
    tracking.set_alias(NARROW_MODEL, "production", narrow_interval_version)
    serving.reset()
    yield narrow_interval_version
    serving.reset()


def generated_pairs(count: int = 3) -> list[tuple[bytes, bytes]]:
    return [(front, back) for front, back, _year in synthetic.iter_coins(count, seed=31, size=96)]


def ensemble_rows(version: int, pairs, tmp_path) -> np.ndarray:
    """[year, low, high, ...] per pair from the registered version itself, outside the serving process."""
    loaded = tracking.load_predictor(settings.MLFLOW_MODEL_NAME, version, cache_dir=tmp_path / "direct")
    front, back = images.preprocess_batch(pairs, loaded.config)
    return np.asarray(loaded.predict_pairs(front, back), dtype=float)


def assert_is_the_ensembles_interval(low: int, high: int, row: np.ndarray) -> None:
    """low..high is the ensemble's low..high rounded outward to whole years: never a year wider on either side."""
    ensemble_low, ensemble_high = float(row[1]), float(row[2])
    assert ensemble_low <= float(row[0]) <= ensemble_high
    assert ensemble_low - 1 < low <= ensemble_low, (low, high, ensemble_low, ensemble_high)
    assert ensemble_high <= high < ensemble_high + 1, (low, high, ensemble_low, ensemble_high)


@pytest.fixture
def api(collector) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")
    return client


def test_api_details_and_stored_rows_carry_the_ensembles_own_interval(api, narrow_production_model, tmp_path):
    # given a model in production and generated coins, scored directly by the registered version
    version = narrow_production_model
    pairs = generated_pairs()
    rows = ensemble_rows(version, pairs, tmp_path)

    # when predicting them through /api/predict
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    body = {"inputs": [{"front_image_base64": b64(f), "back_image_base64": b64(b)} for f, b in pairs]}
    response = api.post("/api/predict", body, format="json")

    # then every answered coin's served and stored interval is the ensemble's
    assert response.status_code == 200, response.json()
    coin_ids = [int(i) for i in response["X-Coin-Ids"].split(",")]
    compared = 0
    for detail, coin_id, row in zip(response.json()["details"], coin_ids, rows, strict=True):
        stored = Prediction.objects.get(coin_id=coin_id)
        if "rejected" in detail:
            continue
        assert detail["year"] == stored.year == int(round(row[0]))
        assert_is_the_ensembles_interval(detail["low"], detail["high"], row)
        assert_is_the_ensembles_interval(stored.interval_low, stored.interval_high, row)
        compared += 1
    assert compared, "every coin was rejected: no interval was compared"


def test_stored_coin_prediction_carries_the_ensembles_own_interval(narrow_production_model, tmp_path, collector):
    # given a model in production and coins stored as uploads store them
    version = narrow_production_model
    pairs = generated_pairs()
    rows = ensemble_rows(version, pairs, tmp_path)
    coins = [
        CoinFactory(owner=collector, front_image=ContentFile(f, name="front.jpg"), back_image=ContentFile(b, name="back.jpg"))
        for f, b in pairs
    ]

    # when the prediction task's service predicts each one
    predictions = [coin_predict(coin_id=coin.pk) for coin in coins]

    # then each stored interval is the ensemble's
    compared = 0
    for prediction, row in zip(predictions, rows, strict=True):
        assert prediction is not None and prediction.coin.status == Coin.Status.PREDICTED
        if prediction.rejected:
            continue
        assert prediction.year == int(round(row[0]))
        assert_is_the_ensembles_interval(prediction.interval_low, prediction.interval_high, row)
        compared += 1
    assert compared, "every coin was rejected: no interval was compared"
