"""One photo, one year: `manage.py evaluate`'s path, the serving process, /api/predict and the registered MLflow
pyfunc (what `mlflow models serve` runs) all give the same year for the same photos, phone-size JPEGs included."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from registry import serving
from training.ml import synthetic
from training.ml.data import CoinSample
from training.services.comparison import model_version_evaluate

pytestmark = pytest.mark.django_db


def photo_pairs() -> list[tuple[bytes, bytes]]:
    """Synthetic coins as small JPEGs, a 3000x2000 JPEG (decoded in draft mode) and a PNG."""
    pairs = [synthetic.generate_coin_jpegs(year, seed, size=96) for year, seed in ((1712, 1), (1870, 2), (2011, 3))]
    front, back = synthetic.generate_coin_jpegs(1930, 4, size=256)
    large = []
    for data in (front, back):
        image = Image.open(io.BytesIO(data)).convert("RGB").resize((3000, 2000))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        large.append(buffer.getvalue())
    pairs.append((large[0], large[1]))
    png = []
    for data in synthetic.generate_coin_jpegs(1805, 5, size=120):
        buffer = io.BytesIO()
        Image.open(io.BytesIO(data)).save(buffer, "PNG")
        png.append(buffer.getvalue())
    pairs.append((png[0], png[1]))
    return pairs


def test_evaluate_serving_api_and_pyfunc_give_the_same_year(production_model, collector):
    import mlflow

    pairs = photo_pairs()

    # manage.py evaluate's scoring (model_version_evaluate): unrounded years
    samples = [CoinSample(front=f, back=b, year=1900, key=str(i)) for i, (f, b) in enumerate(pairs)]
    evaluated = model_version_evaluate(version=production_model, samples=samples)["predictions"]
    evaluate_years = [int(round(evaluated[str(i)])) for i in range(len(pairs))]

    # the serving process (pages and the inference worker)
    serving_years = [result.year for result in serving.predict_pairs(pairs)]

    # /api/predict
    inputs = [
        {"front_image_base64": base64.b64encode(f).decode(), "back_image_base64": base64.b64encode(b).decode()}
        for f, b in pairs
    ]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")
    response = api.post("/api/predict", {"inputs": inputs}, format="json")
    assert response.status_code == 200, response.content[:300]
    api_years = response.json()["predictions"]

    # the registered model as MLflow serves it
    pyfunc_years = [int(y) for y in np.ravel(mlflow.pyfunc.load_model(f"models:/coin-year/{production_model}").predict(inputs))]

    assert evaluate_years == serving_years == api_years == pyfunc_years
    assert len(set(serving_years)) > 1, "the tiny model answers one year for everything: the test would prove nothing"
