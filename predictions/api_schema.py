"""What the OpenAPI schema (/api/schema/) says beside the serializers: error answers with real messages, the 429 of
throttled operations, response headers, and request examples that the API really accepts.

The schema is a contract checked both ways: tests send every request example and expect a 2xx, and `make fuzz`
(tests/predictions/fuzz_api.py) sends thousands of generated requests and checks every answer against it.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from .serializers import ErrorSerializer

# Real photos, small enough to read: a 16x16 JPEG and a 16x16 PNG of a disc (generated once with Pillow). The API
# accepts them (the model answers with a year or says it is not a coin), so the schema's example really works.
EXAMPLE_JPEG_BASE64 = (
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAA0JCgsKCA0LCgsODg0PEyAVExISEyccHhcgLikxMC4pLSwzOko+MzZGNywtQFdBRkxOUlNSMj5a"
    "YVpQYEpRUk//2wBDAQ4ODhMREyYVFSZPNS01T09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT0//wAAR"
    "CAAQABADASIAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAAAAT/xAAdEAABBAIDAAAAAAAAAAAAAAABAgMEIQUxABES/8QAFQEBAQAAAAAA"
    "AAAAAAAAAAAAAwT/xAAYEQACAwAAAAAAAAAAAAAAAAAAEhMiI//aAAwDAQACEQMRAD8AnwGDjCG3LmNB11wekpXaUpOq0exd8Z/BxjDclw2g"
    "062PSkopKkjdaHQuuMBnIxhtxJjoadbHlKl0lSRq9DoVfGfzkYQ3IkN0OuuDypSLSlJ3ej2KrkGso9EP/9k="
)
EXAMPLE_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAWElEQVR42mPU0NBgIAWwYAo1NfXA2XV1JWiyjMg2ICtFBsjamAiqRpNiIqgaTQET"
    "A4mAiRjjkS0hywbaa8CMHTyxQa6TCFoCV8CEJ9lglWLETK0kJD5iAABvNxz/WBgmaQAAAABJRU5ErkJggg=="
)
# The example account of POST /api/token (tests create it to check that the example works).
EXAMPLE_USERNAME = "collector"
EXAMPLE_PASSWORD = "correct-horse-battery-staple"

# The photo formats the API reads (training.ml.images.SUPPORTED_FORMATS), as media types for multipart parts.
PHOTO_MEDIA_TYPES = "image/jpeg, image/png, image/webp, image/heic, image/heif, image/avif, image/bmp, image/tiff"


def error_response(description: str, *examples: tuple[str, str, str | None]) -> OpenApiResponse:
    """An answer in the API's one error shape, with named examples (name, message, field)."""
    return OpenApiResponse(
        response=ErrorSerializer,
        description=description,
        examples=[
            OpenApiExample(name, value={"error": message, "field": field}, response_only=True)
            for name, message, field in examples
        ],
    )


def throttled(method: str, path: str, *, variable: str, default: str, per: str = "client") -> OpenApiResponse:
    """The 429 of an operation whose calls are counted (predictions.throttles)."""
    return error_response(
        f"Too many calls: at most {default} per {per} by default ({variable}); every call counts, a refused one "
        "(400, 413, 415) too. Nothing was done; the `Retry-After` header says after how many seconds to try again.",
        (
            "Too many requests",
            f"Too many requests: at most {default} to {method} {path}; retry in 42 seconds "
            "(the Retry-After header says the same).",
            None,
        ),
    )


RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    {"type": "integer", "minimum": 1},
    OpenApiParameter.HEADER,
    response=[429],
    required=True,
    description="Seconds to wait before the next call.",
)
RETRY_AFTER_503 = OpenApiParameter(
    "Retry-After",
    {"type": "integer", "minimum": 1},
    OpenApiParameter.HEADER,
    response=[503],
    required=True,
    description="Seconds to wait before trying again.",
)
COIN_IDS_HEADER = OpenApiParameter(
    "X-Coin-Ids",
    {"type": "string", "pattern": "^[0-9]+(,[0-9]+)*$"},
    OpenApiParameter.HEADER,
    response=[200],
    required=True,
    description="Comma-separated ids of the coins stored for the inputs, in order.",
)
PAGE_PARAMETER = OpenApiParameter(
    "page",
    {"type": "integer", "minimum": 1},
    OpenApiParameter.QUERY,
    description="Page number, from 1 (a page past the last one is a 404).",
)
COIN_ID_PARAMETER = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The coin's id.")

UNAUTHENTICATED = error_response(
    "No, unknown or expired credentials (send `Authorization: Token <key>`; get a key at POST /api/token).",
    ("Not authenticated", "Authentication credentials were not provided.", None),
    ("Unknown token", "Invalid token.", None),
    ("Expired token", "The token expired; get a new one at POST /api/token.", None),
)
FORBIDDEN = error_response(
    "Authenticated but not allowed (e.g. a session request without its CSRF token).",
    ("CSRF", "CSRF Failed: CSRF token missing.", None),
)
NOT_FOUND_COIN = error_response("No such coin among yours.", ("Not found", "No Coin matches the given query.", None))
BAD_PHOTO_UPLOAD = error_response(
    "The request is not valid; `field` names the part, `error` the problem (a part missing or empty, a file that is "
    "not an image or is truncated, notes too long).",
    ("Missing side", "back_image is missing: upload the coin's back photo as back_image.", "back_image"),
    ("Not an image", "back_image: the file is not an image (no known image format)", "back_image"),
    ("Truncated", "front_image: the image file is truncated (incomplete upload?)", "front_image"),
)
TOO_LARGE_UPLOAD = error_response(
    "A photo is over the size (COINSITE_MAX_UPLOAD_BYTES, 10 MiB) or pixel (COINSITE_MAX_IMAGE_PIXELS, 50 MP) limit, "
    "or the whole body is over the request limit.",
    ("Photo too large", "front_image: the image is 12.0 MB, more than the limit of 10.0 MB", "front_image"),
    (
        "Too many pixels",
        "back_image: the image has 8000x8000 = 64,000,000 pixels, more than the limit of 50,000,000",
        "back_image",
    ),
)
UNSUPPORTED_UPLOAD = error_response(
    "The body is not multipart/form-data (or a form), or a photo is in a format the API does not read (GIF, PDF...).",
    (
        "Unsupported format",
        "front_image: the image format GIF is not supported (use JPEG, PNG, WEBP, HEIF/HEIC, AVIF, BMP or TIFF)",
        "front_image",
    ),
    (
        "Unsupported media type",
        "Unsupported media type 'application/json': this endpoint accepts multipart/form-data, "
        "application/x-www-form-urlencoded.",
        None,
    ),
)
BODY_TOO_LARGE = error_response(
    "The body is over the request limit.",
    (
        "Body too large",
        "The request body is too large: at most 40.0 MiB per request (each photo at most 10.0 MiB); send fewer or "
        "smaller photos.",
        None,
    ),
)

_EXAMPLE_COIN = {"front_image_base64": EXAMPLE_JPEG_BASE64, "back_image_base64": EXAMPLE_PNG_BASE64}
PREDICT_EXAMPLE = OpenApiExample(
    "One coin",
    value={"inputs": [_EXAMPLE_COIN]},
    request_only=True,
    description="A real (tiny) JPEG front and PNG back: send it as it is and the API answers 200.",
)
# The same coin in the three other bodies of `mlflow models serve`: the API answers each exactly as `inputs`.
PREDICT_BODY_EXAMPLES = [
    OpenApiExample(
        "One coin as dataframe_records",
        value={"dataframe_records": [_EXAMPLE_COIN]},
        request_only=True,
        description="pandas' records orient: the same rows as `inputs`.",
    ),
    OpenApiExample(
        "One coin as dataframe_split",
        value={
            "dataframe_split": {
                "columns": ["front_image_base64", "back_image_base64"],
                "data": [[EXAMPLE_JPEG_BASE64, EXAMPLE_PNG_BASE64]],
            }
        },
        request_only=True,
        description="pandas' split orient: columns matched by name, in any order; an `index` is accepted and ignored.",
    ),
    OpenApiExample(
        "One coin as instances with params",
        value={"instances": [_EXAMPLE_COIN], "params": {"details": True}},
        request_only=True,
        description="TF-serving's row format. `params.details` is the model's MLflow parameter (there it returns the "
        "details instead of the years); the API answers both lists whatever it says.",
    ),
]
PREDICT_ANSWER_EXAMPLE = OpenApiExample(
    "A coin and a cat",
    value={
        "predictions": [1874, None],
        "details": [
            {
                "year": 1874,
                "low": 1873,
                "high": 1876,
                "level": 0.95,
                "coin_score": 0.99,
                "read_score": 0.93,
                "alternatives": [{"year": 1874, "p": 0.81}, {"year": 1879, "p": 0.07}, {"year": 1871, "p": 0.04}],
            },
            {"rejected": "not_a_coin", "message": "This photo does not look like a coin.", "coin_score": 0.02},
        ],
    },
    response_only=True,
)
TOKEN_EXAMPLE = OpenApiExample(
    "Credentials",
    value={"username": EXAMPLE_USERNAME, "password": EXAMPLE_PASSWORD},
    request_only=True,
)
TOKEN_ANSWER_EXAMPLE = OpenApiExample(
    "A token", value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"}, response_only=True
)
