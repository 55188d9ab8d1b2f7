"""schemathesis against /api/schema/: generated requests (schema-conforming and not) get no 5xx, and every response has a
documented status code, content type, headers and body, as in `make fuzz` (tests/predictions/fuzz_api.py, whose
machinery this runs), with a few hundred requests instead of ten thousand.

Runs in-process on the WSGI application, authenticated with a token, with a real production model so /api/predict
really predicts, and with the throttles raised out of the way. Deterministic (seeded).
"""

from __future__ import annotations

import base64

import pytest

from tests.predictions.fuzz_api import SCHEMA_CHECKS, Tally, accepted, example_cases, prepare, run_generated
from training.ml import synthetic

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

MIN_REQUESTS = 300
EXAMPLES_PER_RUN = 25  # 18 runs (operations x positive, negative, real photos, real ids) x 25 = 450 at most


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_api_conforms_to_its_schema_under_generated_requests(collector, production_model, settings):
    # given the API schema, a token, a model in production and the limits raised out of the way
    target = prepare(collector, production_model, settings)
    assert set(target.operations()) == {
        "POST /api/predict",
        "GET /api/coins/",
        "POST /api/coins/",
        "GET /api/coins/{id}/",
        "DELETE /api/coins/{id}/",
        "GET /api/models/production",
        "POST /api/token",
        "DELETE /api/token",
    }
    tally = Tally()

    # when each operation gets the schema's examples, schema-conforming and non-conforming generated requests
    for label, case in example_cases(target):
        target.call(case, label, [*SCHEMA_CHECKS, accepted], tally)
    run_generated(target, tally, budget=EXAMPLES_PER_RUN, round_seed=0)

    # and the success paths random bytes rarely reach (a real prediction of generated coins) answer as documented too
    predict = target.operations()["POST /api/predict"]
    coins = [(b64(front), b64(back)) for front, back, _year in synthetic.iter_coins(3, seed=17)]
    for n in (1, 3):
        body = {"inputs": [{"front_image_base64": f, "back_image_base64": b} for f, b in coins[:n]]}
        target.call(
            predict.Case(body=body, media_type="application/json"), "known good", [*SCHEMA_CHECKS, accepted], tally
        )

    # then no answer differs from the schema, and enough requests were really generated
    print(tally.report())
    assert not tally.mismatched, tally.report()
    assert tally.total >= MIN_REQUESTS, tally.report()
    assert tally.statuses[("known good", 200)] == 2
    assert any(label == "POST /api/predict" and status == 400 for label, status in tally.statuses)
    assert any(label == "POST /api/predict" and status == 200 for label, status in tally.statuses)
