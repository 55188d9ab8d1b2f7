"""The OpenAPI schema says what the API does: its request examples are accepted, its error examples are real answers,
every throttled operation documents its 429 and Retry-After, and what it refuses is in it (e.g. an empty photo)."""

from __future__ import annotations

import io
import json
import re
from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions.api_schema import EXAMPLE_PASSWORD, EXAMPLE_USERNAME
from predictions.apis import BaseApi
from predictions.models import Coin
from registry import serving
from tests.factories import UserFactory, jpeg_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client) -> dict:
    return client.get("/api/schema/", HTTP_ACCEPT="application/json").json()


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


def api_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def encoded(value: dict, media_type: str) -> str | dict:
    if media_type == "application/json":
        return json.dumps(value)
    if media_type == "application/x-www-form-urlencoded":
        return urlencode(value)
    return value


def test_every_request_example_of_the_schema_is_accepted(schema, collector, production_model):
    # given a model in production and the example's account
    serving.reset()
    UserFactory(username=EXAMPLE_USERNAME, password=EXAMPLE_PASSWORD)
    api = api_client(collector)
    sent = []

    # when each request example is sent as it is, with its media type
    for path, method, operation in operations(schema):
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            for name, example in content.get("examples", {}).items():
                if media_type == "multipart/form-data":
                    response = api.generic(method, path, example["value"], format="multipart")
                else:
                    response = api.generic(method, path, encoded(example["value"], media_type), content_type=media_type)
                sent.append((method, path, name))
                # then it is accepted
                assert 200 <= response.status_code < 300, (method, path, name, response.content[:300])

    assert ("POST", "/api/predict", "OneCoin") in sent and ("POST", "/api/token", "Credentials") in sent


def throttled_operations() -> set[tuple[str, str]]:
    """(method, route) of every method an API view counts, from the views themselves."""
    found = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                view = getattr(pattern.callback, "view_class", None)
                if view is not None and issubclass(view, BaseApi):
                    found.update((method, prefix + str(pattern.pattern)) for method in view.throttle_scopes)

    walk(get_resolver().url_patterns, "/")
    return found


def test_every_throttled_operation_documents_its_429_and_only_those(schema):
    throttled = throttled_operations()
    assert {("POST", "/api/predict"), ("POST", "/api/coins/"), ("POST", "/api/token"), ("DELETE", "/api/token")} <= (
        throttled
    )

    for path, method, operation in operations(schema):
        documented = "429" in operation["responses"]
        assert documented == ((method, path) in throttled), (method, path)
        if documented:
            answer = operation["responses"]["429"]
            assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
            assert answer["headers"]["Retry-After"] == {
                "schema": {"type": "integer", "minimum": 1},
                "description": "Seconds to wait before the next call.",
                "required": True,
            }


def test_the_documented_429_is_the_real_one(schema, collector, settings):
    # given a client over its limit of predictions
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "predict": "30/min"},
    }
    api = api_client(collector)
    for _ in range(30):
        api.post("/api/predict", "{}", content_type="application/json")

    # when it calls again
    response = api.post("/api/predict", "{}", content_type="application/json")

    # then the answer is the documented example but for the seconds
    [example] = schema["paths"]["/api/predict"]["post"]["responses"]["429"]["content"]["application/json"]["examples"]
    documented = schema["paths"]["/api/predict"]["post"]["responses"]["429"]["content"]["application/json"]["examples"][
        example
    ]["value"]
    seconds = response["Retry-After"]
    assert response.json() == {
        "error": re.sub(r"retry in 42 seconds", f"retry in {seconds} seconds", documented["error"]),
        "field": None,
    }


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "GIF")
    return buffer.getvalue()


def documented_example(schema: dict, path: str, method: str, status: int, name: str) -> dict:
    examples = schema["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["examples"]
    return next(example["value"] for key, example in examples.items() if name in (key, example.get("summary")))


def upload(front: bytes, back: bytes) -> dict:
    return {"front_image": SimpleUploadedFile("f.jpg", front), "back_image": SimpleUploadedFile("b.jpg", back)}


@pytest.mark.parametrize(
    ("path", "method", "status", "example", "call"),
    [
        (
            "/api/predict",
            "post",
            400,
            "Not JSON",
            lambda api: api.post("/api/predict", "x", content_type="application/json"),
        ),
        (
            "/api/predict",
            "post",
            415,
            "Unsupported media type",
            lambda api: api.post("/api/predict", "x", content_type="text/plain"),
        ),
        (
            "/api/coins/",
            "post",
            400,
            "Not an image",
            lambda api: api.post("/api/coins/", upload(jpeg_bytes(), b"no image here"), format="multipart"),
        ),
        (
            "/api/coins/",
            "post",
            415,
            "Unsupported format",
            lambda api: api.post("/api/coins/", upload(gif(), jpeg_bytes()), format="multipart"),
        ),
        (
            "/api/coins/",
            "post",
            400,
            "Missing side",
            lambda api: api.post(
                "/api/coins/", {"front_image": SimpleUploadedFile("f.jpg", jpeg_bytes())}, format="multipart"
            ),
        ),
        (
            "/api/coins/",
            "get",
            400,
            "Bad filter",
            lambda api: api.get("/api/coins/", {"year_min": 1600}),
        ),
        ("/api/coins/", "get", 404, "Invalid page", lambda api: api.get("/api/coins/", {"page": 5})),
        (
            "/api/token",
            "post",
            400,
            "Wrong credentials",
            lambda api: api.post("/api/token", {"username": "nobody", "password": "x"}, format="json"),
        ),
        (
            "/api/token",
            "post",
            400,
            "Missing password",
            lambda api: api.post("/api/token", {"username": "nobody"}, format="json"),
        ),
        (
            "/api/token",
            "post",
            415,
            "Unsupported media type",
            lambda api: api.post("/api/token", "x", content_type="text/plain"),
        ),
        ("/api/token", "delete", 401, "Not authenticated", lambda api: APIClient().delete("/api/token")),
    ],
    ids=lambda value: value if isinstance(value, str) and value[0].isupper() else None,
)
def test_documented_error_examples_are_real_answers(schema, collector, path, method, status, example, call):
    response = call(api_client(collector))

    assert response.status_code == status
    assert response.json() == documented_example(schema, path, method, status, example)


def test_the_schema_says_what_a_photo_part_must_be(schema, settings):
    """An empty part and a GIF both passed the schema but not the API: the schema now says a part has at least one
    byte and at most the limit, which image formats a part holds, and that 415 answers any other format."""
    upload_schema = schema["components"]["schemas"]["CoinUploadRequest"]
    content = schema["paths"]["/api/coins/"]["post"]["requestBody"]["content"]["multipart/form-data"]

    for side in ("front_image", "back_image"):
        assert upload_schema["properties"][side] | {"description": ""} == {
            "type": "string",
            "format": "binary",
            "minLength": 1,
            "maxLength": settings.COINSITE_MAX_UPLOAD_BYTES,
            "description": "",
        }
        media_types = [media_type.strip() for media_type in content["encoding"][side]["contentType"].split(",")]
        assert "image/jpeg" in media_types and "image/gif" not in media_types
    assert {"400", "413", "415"} <= set(schema["paths"]["/api/coins/"]["post"]["responses"])


@pytest.mark.parametrize("page", ["", "last", "0", "-1", "+1", " 1", "1.0", "01"])
def test_a_page_that_is_not_a_positive_integer_is_404(collector, page):
    """The schema's page is an integer from 1: DRF's paginator alone took `?page=` and `?page=last` as pages."""
    response = api_client(collector).get("/api/coins/", {"page": page})

    assert response.status_code == 404
    assert response.json() == {"error": "Invalid page.", "field": None}


@pytest.mark.parametrize("name", ["status", "year_min", "year_max"])
def test_an_empty_filter_is_refused_naming_it(collector, name):
    """`?status=` listed every coin (DRF reads an empty optional value as none), which the schema does not allow."""
    response = api_client(collector).get(f"/api/coins/?{name}=")

    assert response.status_code == 400
    assert response.json() == {"error": f"{name} is empty: give a value, or leave the parameter out.", "field": name}


def test_the_status_filter_is_documented_with_its_values(schema):
    [status] = [p for p in schema["paths"]["/api/coins/"]["get"]["parameters"] if p["name"] == "status"]

    assert status["in"] == "query" and status["schema"]["enum"] == list(Coin.Status.values)
