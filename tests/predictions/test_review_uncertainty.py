"""The review queue puts first the coins the model is least sure of: serving stores an uncertainty per prediction,
and on generated coins the queue's first coins are the ones the model gets most wrong."""

from __future__ import annotations

import math

import numpy as np
import pytest
from django.urls import reverse

from predictions import services
from predictions.models import Coin, Prediction
from registry.serving import prediction_uncertainty
from training.ml import synthetic

pytestmark = pytest.mark.django_db

YEARS = 1700, 2025  # the reader's year range: p(year) has one column per year
QUEUE = 100
END = 20


def reader_row(p: np.ndarray) -> np.ndarray:
    """An ensemble output row of a date reader: year, low, high, coin score, read score, then p(year)."""
    return np.concatenate([[1874.0, 1870.0, 1878.0, 0.99, 0.5], p])


def test_uncertainty_is_the_entropy_of_the_year_distribution():
    years = YEARS[1] - YEARS[0] + 1
    sure = np.zeros(years)
    sure[174] = 1.0
    between_two = np.zeros(years)
    between_two[[174, 179]] = 0.5
    assert prediction_uncertainty(reader_row(sure)) == pytest.approx(0.0)
    assert prediction_uncertainty(reader_row(between_two)) == pytest.approx(math.log(2))
    assert prediction_uncertainty(reader_row(np.full(years, 1 / years))) == pytest.approx(math.log(years))


def test_a_model_without_a_distribution_stands_in_its_interval():
    assert prediction_uncertainty(np.array([1874.0, 1870.0, 1881.0])) == pytest.approx(math.log(12))


# The date reader as `make run` serves it (192 px: the digits' strokes need them), fine-tuned a little from the
# committed base on a few generated coins: 91 % exact on fresh generated coins, so its mistakes are the exception
# the uncertainty should point at (the suite's 64 px tiny reader cannot read dates at all: MAE 67 years).
READER_OVERRIDES = ["image_size=192", "epochs=1", "folds=2", "batch_size=4", "patience=0", "serve_int8=false"]


@pytest.fixture(scope="module")
def reading_fit():
    """A K-fold fine-tune of the base date reader at serving size on 12 generated coins (about 8 s on one core)."""
    from training.ml.config import load_config
    from training.ml.data import CoinSample
    from training.ml.kfold import fit

    samples = [
        CoinSample(front=front, back=back, year=year, key=str(i))
        for i, (front, back, year) in enumerate(synthetic.iter_coins(12, seed=8, size=192))
    ]
    return fit(load_config(overrides=READER_OVERRIDES), samples, progress=False)


@pytest.fixture
def reading_production_model(reading_fit, registered_tiny_versions, isolated_mlflow, settings):
    """That reader registered as a version of `coin-year` with alias production; yields its version."""
    from registry import serving
    from registry.gateway import mlflow_ready
    from training.ml import tracking

    settings.MLFLOW_MODEL_NAME = "coin-year"
    mlflow_ready()
    with tracking.TrainingTracker(reading_fit.config, experiment="coin-year", run_name="reader-192") as tracker:
        tracker.log_result(reading_fit, manifest=[])
        tracker.log_model(reading_fit)
        version = tracker.register("coin-year")
    tracking.set_alias("coin-year", "production", version)
    serving.reset()
    yield version
    serving.reset()
    tracking.set_alias("coin-year", "production", registered_tiny_versions[0])


def generated_pairs(count: int, seed: int):
    """`count` generated coins as checked photo pairs, with their true years."""
    pairs, years = [], []
    for front, back, year in synthetic.iter_coins(count, seed=seed, size=256):
        pairs.append(
            (
                services.photo_check_header(front, field="front_image_base64"),
                services.photo_check_header(back, field="back_image_base64"),
            )
        )
        years.append(year)
    return pairs, years


@pytest.mark.slow
def test_the_queues_first_coins_are_those_the_model_gets_most_wrong(
    client, collector, curator, reading_production_model
):
    # given a queue of generated coins the Production date reader predicted (each prediction stores its uncertainty)
    pairs, years = generated_pairs(QUEUE, seed=2024)
    predictions = []
    for start in range(0, QUEUE, 16):
        predictions += services.coin_batch_predict(owner=collector, pairs=pairs[start : start + 16])
    error = {p.coin.pk: abs(p.year - year) for p, year in zip(predictions, years, strict=True)}
    assert Prediction.objects.filter(uncertainty__isnull=False).count() == QUEUE
    assert Coin.objects.filter(status=Coin.Status.PREDICTED).count() == QUEUE

    # when a curator opens the review queue in its default order
    client.force_login(curator)
    response = client.get(reverse("admin:predictions_coin_changelist"))
    order = list(response.context["cl"].queryset.values_list("pk", flat=True))
    assert sorted(order) == sorted(error)

    # then the first 20 coins have a higher mean error of the current model than the last 20
    first = float(np.mean([error[pk] for pk in order[:END]]))
    last = float(np.mean([error[pk] for pk in order[-END:]]))
    overall = float(np.mean(list(error.values())))
    print(
        f"\nuncertainty order on {QUEUE} generated coins: MAE of the first {END} = {first:.2f} years, "
        f"of the last {END} = {last:.2f} years (all: {overall:.2f})"
    )
    assert first > last
    assert first > overall
