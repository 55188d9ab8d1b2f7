"""schemathesis against /api/schema/: generated requests (schema-conforming and not) get no 5xx, and every response has a
documented status code and matches its documented schema.

Runs in-process on the WSGI application, authenticated with a token, with a real production model so /api/predict
really predicts. Deterministic (derandomized) and counted: at least 300 requests in total.
"""

from __future__ import annotations

import base64
from collections import Counter

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from registry import serving
from registry.services import model_version_mirror
from training.ml import synthetic

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

MIN_REQUESTS = 300
EXAMPLES_PER_OPERATION_AND_MODE = 40  # (6 positive + 5 negative) x 40 = 440 at most; small input spaces end earlier
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def has_inputs(operation) -> bool:
    return bool(len(operation.path_parameters) or len(operation.query) or len(operation.body))


def run_generated_requests(operation, mode, *, auth: dict, sent: Counter, statuses: Counter) -> None:
    """Send one operation's generated requests and check each response (a failure is shrunk to a minimal case)."""
    label = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def call_and_check(case):
        response = case.call(headers=auth)
        sent[label] += 1
        statuses[(label, response.status_code)] += 1
        # no 5xx, a documented status, a body matching the documented schema
        case.validate_response(response, checks=CHECKS)

    call_and_check()


def test_api_conforms_to_its_schema_under_generated_requests(collector, production_model):
    # given the API schema, a token, and a model in production (mirrored, as after its promotion)
    serving.reset()
    model_version_mirror(version=production_model)
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    auth = {"Authorization": f"Token {Token.objects.create(user=collector).key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "POST /api/predict",
        "GET /api/coins/",
        "POST /api/coins/",
        "GET /api/coins/{id}/",
        "DELETE /api/coins/{id}/",
        "GET /api/models/production",
    }
    sent: Counter[str] = Counter()
    statuses: Counter[tuple[str, int]] = Counter()

    # when each operation gets schema-conforming and non-conforming generated requests
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not has_inputs(operation):
                continue  # nothing to break: GET /api/models/production takes no parameters and no body
            run_generated_requests(operation, mode, auth=auth, sent=sent, statuses=statuses)

    # and the success paths random bytes rarely reach (a real prediction, the model) answer as documented too
    by_label = {f"{op.method.upper()} {op.path}": op for op in operations}
    coins = [(b64(front), b64(back)) for front, back, _year in synthetic.iter_coins(3, seed=17)]
    known_good = [
        by_label["POST /api/predict"].Case(
            body={"inputs": [{"front_image_base64": f, "back_image_base64": b} for f, b in coins[:n]]},
            media_type="application/json",
        )
        for n in (1, 3)
    ] + [by_label["GET /api/models/production"].Case()]
    for case in known_good:
        response = case.call(headers=auth)
        statuses[(f"known good {case.method} {case.path}", response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)
        assert response.status_code == 200, response.text

    # and enough requests were really generated
    print("schemathesis generated requests per operation:", dict(sent), "total:", sum(sent.values()))
    print("statuses:", dict(sorted(statuses.items())))
    assert sum(sent.values()) >= MIN_REQUESTS, dict(sent)
    assert all(status < 500 for _label, status in statuses)
    assert any(label == "POST /api/predict" and status == 400 for label, status in statuses)
