"""`make fuzz`: at least 10,000 schemathesis-generated requests against /api/schema/, every answer checked against it.

Outside the default suite (the file name is not test_*.py; `make fuzz` names it): on 2 CPU cores it takes minutes.
tests/predictions/test_schemathesis.py runs the same machinery with a few hundred requests in the default suite.

What is sent, per operation of the schema:
- schema-conforming requests (positive) and requests that break it (negative), with schemathesis's own generators:
  the photos are then random bytes, which the API must refuse as documented (400, 413, 415) and nothing else;
- schema-conforming requests whose photos are real images (JPEG, PNG, WebP, BMP, TIFF, AVIF of 1 to 96 px, in every
  base64 spelling the schema's description allows): these must be accepted (2xx);
- schema-conforming requests naming the caller's real coins (GET and DELETE /api/coins/{id}/): 2xx too;
- every request example of the schema, which must be accepted too.

Every answer goes through schemathesis's checks (not_a_server_error, status_code_conformance,
content_type_conformance, response_headers_conformance, response_schema_conformance, negative_data_rejection,
positive_data_acceptance) and this file's own (a schema-conforming request is refused only for its photos' content,
or for credentials that do not exist). Throttling is raised for the run: it measures the schema, not the limits.

Environment: COINSITE_FUZZ_REQUESTS (default 10000) requests at least; COINSITE_FUZZ_SEED (default 0) for another
sequence. Prints the totals per operation and status, then one example of each distinct failure, and fails on any.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import jsonschema_rs
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.media_types import FORM_MEDIA_TYPES
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    _sent_form_fields,  # how schemathesis itself reads a sent form
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.serialization import Binary

from predictions.api_schema import EXAMPLE_PASSWORD, EXAMPLE_USERNAME
from predictions.apis import WRONG_CREDENTIALS
from predictions.models import Coin
from registry import serving
from registry.services import model_version_mirror
from tests.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

TARGET_REQUESTS = int(os.environ.get("COINSITE_FUZZ_REQUESTS", "10000"))
SEED = int(os.environ.get("COINSITE_FUZZ_SEED", "0"))
RAISED_RATES = {"predict": "1000000/second", "upload": "1000000/second", "token": "1000000/second"}

SCHEMA_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
PHOTO_FIELD = re.compile(
    r"((inputs|dataframe_records|instances)\[\d+\]\.(front|back)_image_base64|dataframe_split\.data\[\d+\]\[[01]\]"
    r"|front_image|back_image)"
)
# A photo whose bytes arrived intact but are no image the API reads: these 4xx are the documented answer to a
# schema-conforming request (JSON Schema cannot say "the bytes of a JPEG").
PHOTO_CONTENT_WORDS = ("not an image", "could not be decoded", "truncated", "not supported", "pixels", "no pixels")
PHOTO_OPERATIONS = ("POST /api/predict", "POST /api/coins/")


# --- the checks of this API -----------------------------------------------------------------------------------------


def refused_only_for_photo_content(ctx, response, case) -> None:
    """A schema-conforming request with random photo bytes is accepted, or refused for what its photos contain."""
    if response.status_code < 400:
        return
    body = response.json()
    assert response.status_code in (400, 413, 415), f"status {response.status_code}: {body}"
    assert body["field"] and PHOTO_FIELD.fullmatch(body["field"]), f"refused for {body['field']!r}: {body['error']}"
    assert any(word in body["error"] for word in PHOTO_CONTENT_WORDS), f"refused for something else: {body['error']}"


def refused_if_invalid_as_sent(ctx, response, case) -> None:
    """schemathesis's negative_data_rejection, judging a form by what was sent.

    A form carries text: a number generated for `notes` arrives as the text "-3.6e+16", which the schema allows. The
    built-in check knows that, but it validates a file part as an empty string (schemathesis's Binary is a str
    subclass holding no text), which `minLength: 1` then refuses, so it took such a form for invalid data. Here a
    file part counts as its bytes, and the form is judged as the server reads it (the last value of each field)."""
    try:
        negative_data_rejection(ctx, response, case)
    except AcceptedNegativeData:
        if not form_as_sent_conforms(case, response):
            raise


def form_as_sent_conforms(case, response) -> bool:
    media_type = case.media_type or ""
    meta = case.meta
    if media_type.split(";")[0] not in FORM_MEDIA_TYPES or not isinstance(case.body, dict) or meta is None:
        return False
    if any(meta.is_negative_at(location) for location in ParameterLocation if location is not ParameterLocation.BODY):
        return False
    fields = _sent_form_fields(response, media_type)
    if fields is None:
        return False
    sent = {}
    for name, texts in fields.items():
        value = case.body.get(name)
        # the bytes of a file part, as text of the same length: minLength and maxLength count them
        sent[name] = "x" * len(value.data) if isinstance(value, Binary) else texts[-1]
    body_schema = case.operation.get_body_for_media_type(media_type).optimized_schema
    return jsonschema_rs.validator_for(body_schema).is_valid(sent)


def accepted(ctx, response, case) -> None:
    """A request example of the schema is accepted as it is."""
    assert response.status_code < 300, f"status {response.status_code}: {response.text[:300]}"


def refused_only_for_unknown_credentials(ctx, response, case) -> None:
    """A schema-conforming POST /api/token is answered with a token, or 400 for credentials that do not exist."""
    if response.status_code == 200:
        return
    assert response.status_code == 400, f"status {response.status_code}: {response.text[:300]}"
    assert response.json() == {"error": WRONG_CREDENTIALS, "field": None}, response.text[:300]


# --- real photos ----------------------------------------------------------------------------------------------------

PHOTO_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp"}
PHOTO_FORMATS.update({"TIFF": "image/tiff", "AVIF": "image/avif"})


@st.composite
def photos(draw) -> tuple[bytes, str]:
    """A small real image (1 to 96 px a side, any mode the format writes): (bytes, media type)."""
    image_format = draw(st.sampled_from(sorted(PHOTO_FORMATS)))
    width, height = draw(st.integers(1, 96)), draw(st.integers(1, 96))
    modes = ["RGB", "L"] if image_format in ("JPEG", "AVIF") else ["RGB", "L", "RGBA", "P"]
    mode = draw(st.sampled_from(modes))
    colour = draw(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
    image = Image.new("RGB", (width, height), colour)
    if draw(st.booleans()):
        image = Image.effect_noise((width, height), draw(st.integers(1, 100))).convert("RGB")
    if mode == "P":
        image = image.convert("P")
    elif mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue(), PHOTO_FORMATS[image_format]


def base64_spellings(data: bytes) -> st.SearchStrategy[str]:
    """Every spelling the schema's description promises: standard, URL-safe, unpadded, line breaks, data: URL."""
    standard = base64.b64encode(data).decode()
    urlsafe = base64.urlsafe_b64encode(data).decode()
    return st.sampled_from(
        [
            standard,
            standard.rstrip("="),
            urlsafe,
            urlsafe.rstrip("="),
            "\n".join(standard[i : i + 76] for i in range(0, len(standard), 76)),
            f"data:image/jpeg;base64,{standard}",
        ]
    )


@st.composite
def with_real_photos(draw, cases: st.SearchStrategy):
    """A generated case whose photo fields hold real images instead of random bytes (nothing else changes)."""
    case = draw(cases)
    body = case.body
    rows_key = next((key for key in ("inputs", "dataframe_records", "instances") if key in (body or {})), None)
    split = body.get("dataframe_split") if isinstance(body, dict) else None
    if rows_key and isinstance(body[rows_key], list):  # the bodies of `mlflow models serve`: objects per coin
        for item in body[rows_key]:
            for side in ("front_image_base64", "back_image_base64"):
                if isinstance(item, dict) and isinstance(item.get(side), str):
                    item[side] = draw(base64_spellings(draw(photos())[0]))
    elif isinstance(split, dict) and isinstance(split.get("data"), list):  # or rows of two photos
        for row in split["data"]:
            for index, value in enumerate(row if isinstance(row, list) else []):
                if isinstance(value, str):
                    row[index] = draw(base64_spellings(draw(photos())[0]))
    elif isinstance(body, dict):
        content_types = dict(case.multipart_content_types or {})
        for side in ("front_image", "back_image"):
            if side in body:
                data, media_type = draw(photos())
                body[side] = Binary(data)
                content_types[side] = media_type
        case.multipart_content_types = content_types
    return case


@st.composite
def with_real_ids(draw, cases: st.SearchStrategy, owner):
    """A generated case naming one of the caller's coins (random ids are almost never one, so the answers with a coin,
    and its deletion, would go unchecked)."""
    case = draw(cases)
    ids = list(Coin.objects.filter(owner=owner).order_by("-pk").values_list("pk", flat=True)[:50])
    # A draw whose bounds do not depend on how many coins there are now: DELETE removes coins between a case and
    # hypothesis' replay of it, and sampled_from(ids) then drew with other bounds (FlakyStrategyDefinition).
    position = draw(st.integers(min_value=0, max_value=49))
    if ids:
        case.path_parameters = {**case.path_parameters, "id": ids[position % len(ids)]}
    return case


# --- the run --------------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Requests sent and statuses seen per operation, and one example of each distinct failure."""

    sent: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    failures: dict = field(default_factory=dict)
    failed: Counter = field(default_factory=Counter)
    mismatched: int = 0

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def record(self, label: str, case, response, error: BaseException | None) -> None:
        self.sent[label] += 1
        self.statuses[(label, response.status_code)] += 1
        if error is None:
            return
        self.mismatched += 1
        for failure in getattr(error, "exceptions", None) or [error]:  # one failure, or a group of distinct ones
            first_line = (str(failure).strip().splitlines() or [type(failure).__name__])[0][:160]
            key = (label, response.status_code, f"{type(failure).__name__}: {first_line}")
            self.failed[key] += 1
            self.failures.setdefault(key, (str(failure)[:1500], case.as_curl_command()[:1500], response.text[:500]))

    def report(self) -> str:
        lines = [f"requests sent: {self.total}"]
        for label in sorted(self.sent):
            counts = ", ".join(f"{status}: {n}" for (name, status), n in sorted(self.statuses.items()) if name == label)
            lines.append(f"  {label:32} {self.sent[label]:6}   {counts}")
        server_errors = sum(n for (_label, status), n in self.statuses.items() if status >= 500)
        lines.append(f"5xx: {server_errors}   answers that differ from the schema: {self.mismatched}")
        for key, (error, curl, text) in self.failures.items():
            lines += [f"--- {key[0]} -> {key[1]} ({self.failed[key]}x): {key[2]}", error, curl, f"answer: {text}"]
        return "\n".join(lines)


@dataclass
class Target:
    """The API under test: its schema, a token, and what to do after each call."""

    schema: object
    auth: dict
    token_key: str
    user: object

    def operations(self) -> dict:
        return {
            f"{op.method.upper()} {op.path}": op for op in (result.ok() for result in self.schema.get_all_operations())
        }

    def call(self, case, label: str, checks: list, tally: Tally) -> None:
        response = case.call(headers=self.auth)
        error = None
        try:
            case.validate_response(response, checks=checks, headers=self.auth)
        except (Exception, BaseExceptionGroup) as failure:  # one failure (an AssertionError) or a group of them
            error = failure
        tally.record(label, case, response, error)
        if label == "DELETE /api/token":  # the run goes on with the same token
            Token.objects.get_or_create(user=self.user, defaults={"key": self.token_key})


REAL_PHOTOS, REAL_IDS = "real photos", "real ids"
ID_OPERATIONS = ("GET /api/coins/{id}/", "DELETE /api/coins/{id}/")


def checks_for(label: str, mode: GenerationMode, variant: str | None) -> list:
    checks = list(SCHEMA_CHECKS)
    if mode is GenerationMode.NEGATIVE:
        return [*checks, refused_if_invalid_as_sent]
    if label in PHOTO_OPERATIONS and variant != REAL_PHOTOS:
        return [*checks, refused_only_for_photo_content]
    if label == "POST /api/token":
        return [*checks, refused_only_for_unknown_credentials]
    return [*checks, positive_data_acceptance]


def has_inputs(operation) -> bool:
    return bool(len(operation.path_parameters) or len(operation.query) or len(operation.body))


def plan(target: Target) -> list[tuple[str, object, GenerationMode, str | None]]:
    """(label, operation, mode, variant) for every operation: positive, negative where there is anything to break,
    positive with real photos where there are photos, and with the ids of real coins where there is an id."""
    runs = []
    order = {"POST": 0, "GET": 1, "DELETE": 2}  # coins are made before their ids are asked for, and deleted last
    for label, operation in sorted(
        target.operations().items(), key=lambda item: (order[item[1].method.upper()], item[0])
    ):
        runs.append((label, operation, GenerationMode.POSITIVE, None))
        if has_inputs(operation):
            runs.append((label, operation, GenerationMode.NEGATIVE, None))
        if label in PHOTO_OPERATIONS:
            runs.append((label, operation, GenerationMode.POSITIVE, REAL_PHOTOS))
        if label in ID_OPERATIONS:
            runs.append((label, operation, GenerationMode.POSITIVE, REAL_IDS))
    return runs


def run_generated(target: Target, tally: Tally, *, budget: int, round_seed: int) -> None:
    """One round: up to `budget` generated requests for each entry of plan() (fewer where hypothesis exhausts it)."""
    for label, operation, mode, variant in plan(target):
        strategy = operation.as_strategy(generation_mode=mode)
        if variant == REAL_PHOTOS:
            strategy = with_real_photos(strategy)
        elif variant == REAL_IDS:
            strategy = with_real_ids(strategy, target.user)
        checks = checks_for(label, mode, variant)
        send_generated(target, tally, label, strategy, checks, budget=budget, round_seed=round_seed)


def send_generated(target: Target, tally: Tally, label: str, strategy, checks: list, *, budget: int, round_seed: int):
    """Send up to `budget` cases drawn from `strategy`; a failing answer is recorded, and the run goes on."""

    @seed(round_seed)
    @given(case=strategy)
    @hypothesis_settings(
        max_examples=budget,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(case):
        target.call(case, label, checks, tally)

    call()


def example_cases(target: Target) -> list[tuple[str, object]]:
    """The request examples of the schema, as cases (each must be accepted)."""
    cases = []
    for label, operation in sorted(target.operations().items()):
        content = operation.definition.raw.get("requestBody", {}).get("content", {})
        for media_type, body in content.items():
            for example in body.get("examples", {}).values():
                cases.append((label, operation.Case(body=example["value"], media_type=media_type)))
    return cases


def prepare(collector, production_model, settings) -> Target:
    """A production model (mirrored, as after its promotion), a token, raised limits, and the schema."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": RAISED_RATES}
    settings.COINSITE_LOGIN_FAILURE_LIMIT = 10**9  # generated usernames repeat: measure the schema, not the lockout
    serving.reset()
    model_version_mirror(version=production_model)
    token = Token.objects.create(user=collector)
    UserFactory(username=EXAMPLE_USERNAME, password=EXAMPLE_PASSWORD)  # the account of POST /api/token's example
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    checks = schema.config.checks
    # Strict: with a valid token and no limit in the way, a conforming request is answered 2xx (or 404 for an id
    # that is none of the caller's coins, a page past the last); a non-conforming one as the schema documents.
    checks.positive_data_acceptance.expected_statuses = ["2xx", "404"]
    checks.negative_data_rejection.expected_statuses = ["400", "404", "405", "413", "415"]
    return Target(schema=schema, auth={"Authorization": f"Token {token.key}"}, token_key=token.key, user=collector)


@pytest.fixture
def quiet_4xx():
    """Django logs every 4xx as a warning: thousands of lines that would bury the report (5xx are still logged).

    Called after the WSGI application is made: that runs django.setup(), which configures logging afresh."""
    logger = logging.getLogger("django.request")
    level = logger.level
    yield lambda: logger.setLevel(logging.ERROR)
    logger.setLevel(level)


def test_api_answers_as_its_schema_says_under_10000_generated_requests(
    collector, production_model, settings, quiet_4xx
):
    # given the API with a model in production, a token and limits raised out of the way
    started = time.monotonic()
    target = prepare(collector, production_model, settings)
    quiet_4xx()
    tally = Tally()

    # when the schema's examples, then rounds of generated requests, are sent until the target is reached
    for label, case in example_cases(target):
        target.call(case, label, [*SCHEMA_CHECKS, accepted], tally)
    budget = math.ceil(TARGET_REQUESTS / len(plan(target)))
    round_seed = SEED
    while tally.total < TARGET_REQUESTS:
        before = tally.total
        run_generated(target, tally, budget=budget, round_seed=round_seed)
        round_seed += 1
        assert tally.total > before, "no request generated"
    elapsed = time.monotonic() - started

    # then every answer was as documented
    print(f"\nmake fuzz ({elapsed:.0f} s, seed {SEED}):\n{tally.report()}")
    assert tally.total >= TARGET_REQUESTS
    assert not tally.mismatched, f"{tally.mismatched} answers differ from the schema (see above)"
