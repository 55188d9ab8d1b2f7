"""The interval that serving answers covers the true year of coins the model never saw about as often as it says.

Each registered version carries its calibration, fitted on coins held out from its folds (for the seed's regression
head: the interval's halfwidth). A stored-output comparison only says that today's code answers as yesterday's did;
this asks the question the calibration is for, through the serving path (/api/predict's details, ONNX Runtime): of
fresh generated coins, how many have their true year inside [low, high]? (The suite's tiny date reader cannot read
its coins: its answered intervals span most of the year range, a median 308 years measured, so they would cover the
truth with or without calibration.)
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from training.ml.synthetic import iter_coins

pytestmark = pytest.mark.django_db

HELD_OUT = 40  # fresh coins (another seed than every fit of the suite's)
BATCH = 10  # inputs per request (the API takes at most 16)
TOLERANCE = 0.15  # 40 coins at a true coverage of 0.95: a share below 0.80 has a probability near 1e-3


@pytest.fixture
def api(collector) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")
    return client


def served_intervals(api) -> tuple[np.ndarray, list[dict]]:
    coins = list(iter_coins(HELD_OUT, seed=2027, size=96))
    inputs = [
        {"front_image_base64": base64.b64encode(front).decode(), "back_image_base64": base64.b64encode(back).decode()}
        for front, back, _ in coins
    ]
    details = []
    for start in range(0, len(inputs), BATCH):
        response = api.post("/api/predict", {"inputs": inputs[start : start + BATCH]}, format="json")
        assert response.status_code == 200, response.content[:300]
        details += response.json()["details"]
    return np.array([year for *_, year in coins]), details


def coverage(years: np.ndarray, details: list[dict]) -> tuple[float, int]:
    """The share of answered coins whose true year is inside the served [low, high], and how many were answered."""
    answered = [(year, d) for year, d in zip(years, details, strict=True) if "year" in d]
    return float(np.mean([d["low"] <= year <= d["high"] for year, d in answered])) if answered else 0.0, len(answered)


def test_the_served_interval_covers_held_out_coins_at_its_stated_level(api, production_model):
    # given the seed's regression head in Production: its interval is its answer +- a halfwidth calibrated on its
    # out-of-fold errors at the stated level (0.95)
    years, details = served_intervals(api)

    # when it answers coins it never saw, then their true years fall inside the served intervals about that often
    share, answered = coverage(years, details)
    assert answered == HELD_OUT
    level = details[0]["level"]
    assert share >= level - TOLERANCE, f"served coverage {share:.0%} on {answered} held-out coins at level {level}"
