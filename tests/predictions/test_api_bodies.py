"""/api/predict takes the four bodies `mlflow models serve` takes (issue 21, must show 6): `inputs`,
`dataframe_records`, `dataframe_split` and `instances` give the same answer, and the same answer as the registered
pyfunc in process and through MLflow's own scoring-server handler; a bad photo is named where the body put it."""

from __future__ import annotations

import base64
import json

import mlflow
import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions.models import Coin
from tests.training.ml.test_pyfunc import four_bodies, invoke
from training.ml import negatives, synthetic

pytestmark = pytest.mark.django_db


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def api(collector) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")
    return client


@pytest.fixture
def photos() -> list[dict[str, str]]:
    """Three generated coins and a photo of fur: answers of both kinds."""
    pairs = [(front, back) for front, back, _year in synthetic.iter_coins(3, seed=31)]
    cat = negatives.generate_negative_jpeg(7, kinds=("fur",))
    pairs.insert(1, (cat, cat))
    return [{"front_image_base64": b64(front), "back_image_base64": b64(back)} for front, back in pairs]


def test_four_bodies_give_the_api_the_same_answer_as_the_pyfunc_and_mlflow_serving(
    api, reader_production_model, photos
):
    # given the production model as an MLflow client loads it, and its answers in process
    served = mlflow.pyfunc.load_model("models:/coin-year@production")
    years = served.predict(photos)
    details = served.predict(photos, params={"details": True})

    # when the same coins are sent to /api/predict in each of the four bodies (asking for the details, as MLflow
    # clients do), and to MLflow's scoring-server handler
    answers = {
        name: api.post(reverse("api-predict"), body, format="json")
        for name, body in four_bodies(photos, params={"details": True}).items()
    }
    scored = {name: invoke(served, body) for name, body in four_bodies(photos, params={"details": True}).items()}

    # then every body gets the pyfunc's years and details, in the order sent, and each input is stored once
    assert {name: (a.status_code, a.json()) for name, a in answers.items()} == {
        name: (200, {"predictions": years, "details": details}) for name in answers
    }
    assert scored == {name: (200, {"predictions": details}) for name in scored}
    assert Coin.objects.count() == 4 * len(photos)
    assert None in years and any(year is not None for year in years) or len(set(map(str, details))) > 1


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("inputs", "inputs[1].back_image_base64"),
        ("dataframe_records", "dataframe_records[1].back_image_base64"),
        ("dataframe_split", "dataframe_split.data[1][0]"),  # four_bodies puts the back photo in the first column
        ("instances", "instances[1].back_image_base64"),
    ],
)
def test_a_photo_that_is_not_base64_is_named_where_the_body_put_it(api, reader_production_model, photos, name, field):
    photos[1] = {**photos[1], "back_image_base64": "%%% not base64 %%%"}

    response = api.post(reverse("api-predict"), json.dumps(four_bodies(photos)[name]), content_type="application/json")

    assert response.status_code == 400, response.json()
    assert response.json()["field"] == field
    assert response.json()["error"].startswith(f"{field}: ") and "base64" in response.json()["error"]
    assert Coin.objects.count() == 0


def test_split_columns_are_matched_by_name_and_its_index_is_ignored(api, reader_production_model, photos):
    rows = [[p["front_image_base64"], p["back_image_base64"]] for p in photos[:2]]
    as_inputs = api.post(reverse("api-predict"), {"inputs": photos[:2]}, format="json").json()

    split = api.post(
        reverse("api-predict"),
        {"dataframe_split": {"columns": ["front_image_base64", "back_image_base64"], "data": rows, "index": [9, 3]}},
        format="json",
    )

    assert split.status_code == 200, split.json()
    assert split.json() == as_inputs
