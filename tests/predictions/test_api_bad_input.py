"""Bad input on /api/predict and POST /api/coins/: a 4xx naming the problem and the field, nothing stored, no echo.

Every case checks the status, the `field`, that `error` names the problem, that no Coin row and no file was left
behind, and that the response does not contain the payload (nor a stack trace).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions.models import Coin
from tests.factories import jpeg_bytes

pytestmark = pytest.mark.django_db

MARKER = "PAYLOAD-MARKER-7f3c"  # planted in payloads; must never come back


# --- helpers ---------------------------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 150, 40)).save(buffer, "GIF")
    return buffer.getvalue()


def not_an_image() -> bytes:
    return (f"{MARKER} this is a text file, not a photo of a coin. " * 20).encode()


def truncated_jpeg() -> bytes:
    data = jpeg_bytes(size=(400, 400), seed=9)
    return data[: len(data) // 2]


def files_under(root: Path) -> list[Path]:
    return [path for path in Path(root).rglob("*") if path.is_file()] if Path(root).exists() else []


@pytest.fixture
def api(collector) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")
    return client


@pytest.fixture
def small_limits(settings):
    """Limits small enough to cross with small photos: 3 inputs, 20 kB per photo, 1 MB per body, 0.25 MP."""
    settings.COINSITE_PREDICT_MAX_INPUTS = 3
    settings.COINSITE_MAX_UPLOAD_BYTES = 20_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000_000
    settings.COINSITE_MAX_IMAGE_PIXELS = 250_000
    return settings


def assert_refused(response, *, status: int, field: str | None, words: tuple[str, ...], payloads=(), settings=None):
    """The shape every refusal shares: status, field, a message naming the problem; nothing kept, nothing echoed."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "field"}
    assert body["field"] == field, body
    message = body["error"].lower()
    assert any(word in message for word in words), body
    assert Coin.objects.count() == 0
    assert files_under(settings.MEDIA_ROOT) == []
    content = response.content
    assert MARKER.encode() not in content
    assert b"Traceback" not in content
    for payload in payloads:
        sample = payload if isinstance(payload, bytes) else payload.encode()
        if len(sample) >= 16:
            assert sample[:64] not in content and sample[-64:] not in content


def good_pair() -> dict[str, str]:
    return {"front_image_base64": b64(jpeg_bytes(seed=1)), "back_image_base64": b64(jpeg_bytes(seed=2))}


# --- POST /api/predict: the body -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "body", "field", "words"),
    [
        ("body is a list", [good_pair()], None, ("json object",)),
        ("body is a string", MARKER, None, ("json object",)),
        ("inputs missing", {}, "inputs", ("missing",)),
        ("inputs null", {"inputs": None}, "inputs", ("null",)),
        ("inputs not a list", {"inputs": {"front_image_base64": MARKER}}, "inputs", ("must be a list",)),
        ("inputs a string", {"inputs": MARKER}, "inputs", ("must be a list",)),
        ("inputs empty", {"inputs": []}, "inputs", ("empty",)),
        ("too many inputs", {"inputs": [good_pair()] * 4}, "inputs", ("too many inputs",)),
        ("item not an object", {"inputs": [good_pair(), MARKER]}, "inputs[1]", ("must be an object",)),
        ("item a list", {"inputs": [[MARKER, MARKER]]}, "inputs[0]", ("must be an object",)),
        (
            "item with an extra key",
            {"inputs": [{**good_pair(), "side_image_base64": MARKER}]},
            "inputs[0]",
            ("unexpected key",),
        ),
        ("extra key at the top", {"inputs": [good_pair()], "extra": {"x": MARKER}}, None, ("unexpected key",)),
        ("unknown parameter", {"inputs": [good_pair()], "params": {"x": MARKER}}, "params", ("unexpected key",)),
        (
            "details not a boolean",
            {"inputs": [good_pair()], "params": {"details": MARKER}},
            "params.details",
            ("json boolean",),
        ),
        # DRF's BooleanField alone took these; the schema says boolean (a live schemathesis run: {"details": 0} -> 200)
        ("details a number", {"inputs": [good_pair()], "params": {"details": 0}}, "params.details", ("json boolean",)),
        (
            "details a string",
            {"inputs": [good_pair()], "params": {"details": "true"}},
            "params.details",
            ("json boolean",),
        ),
        ("two bodies at once", {"inputs": [good_pair()], "instances": [good_pair()]}, None, ("exactly one of",)),
        ("records empty", {"dataframe_records": []}, "dataframe_records", ("empty",)),
        ("too many records", {"dataframe_records": [good_pair()] * 4}, "dataframe_records", ("too many inputs",)),
        (
            "instances: missing back",
            {"instances": [good_pair(), {"front_image_base64": b64(jpeg_bytes(seed=3))}]},
            "instances[1].back_image_base64",
            ("missing",),
        ),
        (
            "records: side not a string",
            {"dataframe_records": [{"front_image_base64": 12345, "back_image_base64": b64(jpeg_bytes())}]},
            "dataframe_records[0].front_image_base64",
            ("must be a string",),
        ),
        ("split not an object", {"dataframe_split": [good_pair()]}, "dataframe_split", ("must be an object",)),
        ("split without columns", {"dataframe_split": {"data": [["a", "b"]]}}, "dataframe_split.columns", ("missing",)),
        (
            "split with an unknown column",
            {"dataframe_split": {"columns": ["front_image_base64", "side"], "data": [["a", "b"]]}},
            "dataframe_split.columns[1]",
            ("not a valid choice",),
        ),
        (
            "split naming a column twice",
            {"dataframe_split": {"columns": ["front_image_base64"] * 2, "data": [["a", "b"]]}},
            "dataframe_split.columns",
            ("twice",),
        ),
        (
            "split row of one photo",
            {"dataframe_split": {"columns": ["front_image_base64", "back_image_base64"], "data": [["a", "b"], ["a"]]}},
            "dataframe_split.data[1]",
            ("at least 2",),
        ),
        (
            "split photo not a string",
            {"dataframe_split": {"columns": ["front_image_base64", "back_image_base64"], "data": [["a", 7]]}},
            "dataframe_split.data[0][1]",
            ("must be a string",),
        ),
        (
            "too many split rows",
            {"dataframe_split": {"columns": ["front_image_base64", "back_image_base64"], "data": [["a", "b"]] * 4}},
            "dataframe_split.data",
            ("too many inputs",),
        ),
        (
            "missing back",
            {"inputs": [good_pair(), {"front_image_base64": b64(jpeg_bytes(seed=3))}]},
            "inputs[1].back_image_base64",
            ("missing",),
        ),
        (
            "missing front",
            {"inputs": [{"back_image_base64": b64(jpeg_bytes())}]},
            "inputs[0].front_image_base64",
            ("missing",),
        ),
        (
            "side not a string",
            {"inputs": [{"front_image_base64": 12345, "back_image_base64": b64(jpeg_bytes())}]},
            "inputs[0].front_image_base64",
            ("must be a string",),
        ),
        (
            "side null",
            {"inputs": [{"front_image_base64": b64(jpeg_bytes()), "back_image_base64": None}]},
            "inputs[0].back_image_base64",
            ("null",),
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and " " in value else "",
)
def test_predict_refuses_a_body_of_the_wrong_shape(api, small_limits, case, body, field, words):
    response = api.post("/api/predict", json.dumps(body), content_type="application/json")

    assert_refused(response, status=400, field=field, words=words, settings=small_limits)


def test_predict_refuses_a_body_that_is_not_json(api, settings):
    response = api.post("/api/predict", f'{{"inputs": [{MARKER}', content_type="application/json")

    assert_refused(response, status=400, field=None, words=("not valid json",), settings=settings)


def test_predict_refuses_json_nested_absurdly_deep(api, settings):
    response = api.post("/api/predict", "[" * 200_000 + "]" * 200_000, content_type="application/json")

    assert_refused(response, status=400, field=None, words=("not valid json",), settings=settings)


def test_predict_refuses_an_empty_body(api, settings):
    response = api.post("/api/predict", b"", content_type="application/json")

    assert_refused(response, status=400, field="inputs", words=("missing",), settings=settings)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_predict_refuses_other_media_types_with_415(api, settings, content_type):
    response = api.post("/api/predict", json.dumps({"inputs": [good_pair()]}), content_type=content_type)

    assert_refused(response, status=415, field=None, words=("unsupported media type",), settings=settings)
    assert "application/json" in response.json()["error"]


def test_predict_refuses_a_body_far_over_the_limit_with_413(api, small_limits):
    # given a body 10x the request limit
    body = json.dumps({"inputs": [{"front_image_base64": "A" * 5_000_000, "back_image_base64": MARKER}]})

    response = api.post("/api/predict", body, content_type="application/json")

    assert_refused(response, status=413, field=None, words=("too large",), settings=small_limits)


# --- POST /api/predict: the photos -----------------------------------------------------------------------------------


def big_jpeg() -> bytes:
    """Noise does not compress: a 400x400 noisy JPEG is well over the 20 kB test limit."""
    image = Image.effect_noise((400, 400), 100).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    assert len(buffer.getvalue()) > 20_000
    return buffer.getvalue()


PHOTO_CASES = [
    # (case, photo text for the API, status, words)
    ("not base64", f"{MARKER}!!!***not base64***", 400, ("base64",)),
    ("not an image", b64(not_an_image()), 400, ("not an image",)),
    ("truncated image", b64(truncated_jpeg()), 400, ("truncated",)),
    ("zero bytes", "", 400, ("empty",)),
    ("over the size limit", b64(big_jpeg()), 413, ("larger than the limit", "more than the limit")),
    ("over the pixel limit", b64(jpeg_bytes(size=(600, 600))), 413, ("pixels",)),
    ("unsupported format", b64(gif_bytes()), 415, ("not supported", "unsupported")),
]


@pytest.mark.parametrize("model", ["no model", "production model"])
@pytest.mark.parametrize(("case", "text", "status", "words"), PHOTO_CASES, ids=[case[0] for case in PHOTO_CASES])
def test_predict_refuses_a_bad_photo_naming_its_input_and_side(
    api, small_limits, case, text, status, words, model, request
):
    """With a model in production, photos are stored while they are decoded: a photo found truncated only then must
    still leave no file and no row behind (the writes are discarded)."""
    request.getfixturevalue("production_model" if model == "production model" else "no_model")
    # given a batch whose third input has a bad back photo
    inputs = [good_pair(), good_pair(), {"front_image_base64": b64(jpeg_bytes(seed=5)), "back_image_base64": text}]

    response = api.post("/api/predict", {"inputs": inputs}, format="json")

    assert_refused(
        response,
        status=status,
        field="inputs[2].back_image_base64",
        words=words,
        payloads=[text],
        settings=small_limits,
    )


def test_predict_checks_every_input_before_anything_else(api, small_limits):
    # given the first input fine and the second bad: the error is the second's, and the first was not stored
    inputs = [good_pair(), {"front_image_base64": b64(not_an_image()), "back_image_base64": b64(jpeg_bytes())}]

    response = api.post("/api/predict", {"inputs": inputs}, format="json")

    assert_refused(
        response, status=400, field="inputs[1].front_image_base64", words=("not an image",), settings=small_limits
    )


# --- POST /api/coins/ ------------------------------------------------------------------------------------------------


def upload(data: bytes, name: str = "coin.jpg", content_type: str = "image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


UPLOAD_CASES = [
    # (case, back photo bytes, status, words)
    ("not an image", not_an_image(), 400, ("not an image",)),
    ("truncated image", truncated_jpeg(), 400, ("truncated",)),
    ("zero bytes", b"", 400, ("empty",)),
    ("over the size limit", big_jpeg(), 413, ("larger than the limit", "more than the limit")),
    ("over the pixel limit", jpeg_bytes(size=(600, 600)), 413, ("pixels",)),
    ("unsupported format", gif_bytes(), 415, ("not supported", "unsupported")),
]


@pytest.mark.parametrize(("case", "data", "status", "words"), UPLOAD_CASES, ids=[case[0] for case in UPLOAD_CASES])
def test_coin_upload_refuses_a_bad_photo_naming_its_side(api, small_limits, case, data, status, words):
    response = api.post(
        "/api/coins/", {"front_image": upload(jpeg_bytes()), "back_image": upload(data)}, format="multipart"
    )

    assert_refused(response, status=status, field="back_image", words=words, payloads=[data], settings=small_limits)


@pytest.mark.parametrize(
    ("case", "form", "field", "words"),
    [
        ("missing back", {"front_image": "front"}, "back_image", ("missing",)),
        ("missing front", {"back_image": "back"}, "front_image", ("missing",)),
        ("nothing", {}, "front_image", ("missing",)),
        ("front is text, not a file", {"front_image": MARKER, "back_image": "back"}, "front_image", ("not a file",)),
    ],
    ids=lambda value: value if isinstance(value, str) and " " in value else "",
)
def test_coin_upload_refuses_missing_sides(api, small_limits, case, form, field, words):
    files = {"front": upload(jpeg_bytes(seed=1)), "back": upload(jpeg_bytes(seed=2))}
    data = {key: files[value] if value in files else value for key, value in form.items()}

    response = api.post("/api/coins/", data, format="multipart")

    assert_refused(response, status=400, field=field, words=words, settings=small_limits)


def test_coin_upload_refuses_json_with_415(api, settings):
    response = api.post("/api/coins/", {"front_image": b64(jpeg_bytes()), "back_image": MARKER}, format="json")

    assert_refused(response, status=415, field=None, words=("unsupported media type",), settings=settings)
    assert "multipart/form-data" in response.json()["error"]


def test_coin_upload_refuses_a_body_far_over_the_limit_with_413(api, small_limits):
    response = api.post(
        "/api/coins/",
        {"front_image": upload(jpeg_bytes()), "back_image": upload(MARKER.encode() * 300_000)},
        format="multipart",
    )

    assert_refused(response, status=413, field=None, words=("too large",), settings=small_limits)


def test_coin_upload_refuses_too_long_notes(api, settings):
    response = api.post(
        "/api/coins/",
        {"front_image": upload(jpeg_bytes(seed=1)), "back_image": upload(jpeg_bytes(seed=2)), "notes": "n" * 501},
        format="multipart",
    )

    assert_refused(response, status=400, field="notes", words=("500 characters",), settings=settings)


def test_coin_upload_refuses_a_broken_multipart_body(api, settings):
    body = f'--b\r\nContent-Disposition: form-data; name="front_image"; filename="a.jpg"\r\n\r\n{MARKER}'

    response = api.post("/api/coins/", body, content_type="multipart/form-data; boundary=b")

    assert response.status_code == 400
    assert response.json()["field"] in (None, "front_image")
    assert Coin.objects.count() == 0 and files_under(settings.MEDIA_ROOT) == []
    assert MARKER.encode() not in response.content


def test_coin_upload_refuses_too_many_form_fields(api, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    form = {f"field{i}": "x" for i in range(20)}
    form.update(front_image=upload(jpeg_bytes(seed=1)), back_image=upload(jpeg_bytes(seed=2)))

    response = api.post("/api/coins/", form, format="multipart")

    assert_refused(response, status=400, field=None, words=("refused", "too many"), settings=settings)


@pytest.mark.parametrize("bad_text", ["abc\u0000def", "abc\ud800def"])
def test_nul_or_surrogate_in_base64_is_a_named_400(bad_text, collector):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(collector)
    body = {"inputs": [{"front_image_base64": bad_text, "back_image_base64": bad_text}]}

    # json.dumps escapes a lone surrogate as \ud800, as a client's JSON library would
    response = client.post("/api/predict", json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["field"].startswith("inputs[0].")
    assert "base64" in response.json()["error"]
