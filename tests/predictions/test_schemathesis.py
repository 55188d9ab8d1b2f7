"""schemathesis against /api/schema/: generated requests (schema-conforming and not) get no 5xx, and every response has a
documented status code and matches its documented schema.

Runs in-process on the WSGI application, authenticated with a token, with a real production model so /api/predict
really predicts. Deterministic (derandomized) and counted: at least 300 requests in total.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from predictions import inference

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

MIN_REQUESTS = 300
EXAMPLES_PER_OPERATION_AND_MODE = 40  # (6 positive + 5 negative) x 40 = 440 at most; small input spaces end earlier
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


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
    # given the API schema, a token, and a model in production
    inference.reset()
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

    # and enough requests were really made
    print("schemathesis requests per operation:", dict(sent))
    print("statuses:", dict(sorted(statuses.items())))
    assert sum(sent.values()) >= MIN_REQUESTS, dict(sent)
    assert all(status < 500 for _label, status in statuses)
    assert any(label == "POST /api/predict" and status == 400 for label, status in statuses)
