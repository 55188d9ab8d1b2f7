"""The DRF API: thin views (InputSerializer -> service -> OutputSerializer) and the one error shape of the API.

Every error, whatever raised it, leaves as {"error": "<what is wrong, in words>", "field": "<path or null>"} with the
status HTTP prescribes (400, 401, 403, 404, 405, 413, 415, 503), never as a 500 page, a stack trace or an echo of the
payload. `exception_handler` is the REST_FRAMEWORK EXCEPTION_HANDLER.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from registry.selectors import production_model_version
from registry.serving import NoProductionModel
from training.ml import images

from . import selectors, services
from .models import Coin
from .serializers import (
    CoinCreateInputSerializer,
    CoinFilterSerializer,
    CoinOutputSerializer,
    CoinPageSerializer,
    ErrorSerializer,
    ModelVersionOutputSerializer,
    PredictInputSerializer,
    PredictOutputSerializer,
)

logger = logging.getLogger(__name__)

NO_PRODUCTION_MODEL = "No model is in production yet"


# --- errors ---------------------------------------------------------------------------------------------------------


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


def _body_limit_message() -> str:
    mib = 1024 * 1024
    return (
        f"The request body is too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE / mib:.1f} MiB per request "
        f"(each photo at most {settings.COINSITE_MAX_UPLOAD_BYTES / mib:.1f} MiB); send fewer or smaller photos."
    )


def _first_error(detail, path: str = "") -> tuple[str | None, str]:
    """The first problem in a DRF error structure, as (field path like `inputs[2].back_image_base64` or None, text)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                child = path
            elif isinstance(key, int):
                child = f"{path}[{key}]"
            else:
                child = f"{path}.{key}" if path else str(key)
            found = _first_error(value, child)
            if found[1]:
                return found
        return (path or None, "")
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            nested = isinstance(value, dict | list) and not _is_message_list(value)
            found = _first_error(value, f"{path}[{index}]" if nested else path)
            if found[1]:
                return found
        return (path or None, "")
    return (path or None, str(detail))


def _is_message_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _message(field: str | None, text: str) -> str:
    """Field-level messages are phrased to follow the field's name ("is missing: ..."); others stand alone."""
    if not field:
        return text
    if text[:1].islower():
        return f"{field} {text}"
    return f"{field}: {text}"


def _error_response(message: str, field: str | None, status_code: int, headers=None) -> Response:
    return Response({"error": message, "field": field}, status=status_code, headers=headers)


def exception_handler(exc, context):
    """Turn any exception of an API view into {"error", "field"} with the right status."""
    if isinstance(exc, images.ImageError):  # its message names the problem ("the image file is truncated ...")
        return _error_response(f"{exc.field}: {exc}" if exc.field else str(exc), exc.field, exc.http_status)
    if isinstance(exc, NoProductionModel):
        return _error_response(str(exc), None, status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "60"})
    if isinstance(exc, RequestDataTooBig):
        return _error_response(_body_limit_message(), None, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):  # too many multipart fields/files, a malformed request
        return _error_response(f"The request was refused: {exc}", None, status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        exc = exceptions.UnsupportedMediaType(exc.args[0] if exc.args else "", detail=_unsupported_media(exc, context))

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("API error in %s", context.get("view").__class__.__name__, exc_info=exc)
        return _error_response(
            "The server failed to handle this request; the problem was logged.",
            None,
            status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        field, text = _first_error(exc.detail)
        message = _message(field, text or "The request is not valid.")
    else:
        field, text = _first_error(exc.detail)
        message = text or str(exc)
    response.data = {"error": message, "field": field}
    return response


def _unsupported_media(exc, context) -> str:
    media_type = str(exc.args[0] if exc.args else "")[:80] or "(none)"
    view = context.get("view")
    accepted = ", ".join(parser.media_type for parser in getattr(view, "parser_classes", []))
    return f"Unsupported media type {media_type!r}: this endpoint accepts {accepted}."


# --- parsers --------------------------------------------------------------------------------------------------------


class ServingJSONParser(JSONParser):
    """JSON with clear errors: a body that is not JSON (or nests absurdly deep) is a 400, never a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except exceptions.ParseError as error:
            reason = str(error.detail).removeprefix("JSON parse error - ")
            raise exceptions.ParseError(f"The request body is not valid JSON ({reason[:120]}).") from None
        except RecursionError:
            raise exceptions.ParseError("The request body is not valid JSON (nested too deeply).") from None


class UploadMultiPartParser(MultiPartParser):
    """multipart/form-data, refused up front (413) when the declared body is over the limit."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        meta = request.META if request is not None else {}
        try:
            length = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length > limit:
            raise PayloadTooLarge(_body_limit_message())
        return super().parse(stream, media_type, parser_context)


# --- schema helpers -------------------------------------------------------------------------------------------------


def _error(description: str, *examples: tuple[str, str, str | None]) -> OpenApiResponse:
    return OpenApiResponse(
        response=ErrorSerializer,
        description=description,
        examples=[
            OpenApiExample(name, value={"error": message, "field": field}, response_only=True)
            for name, message, field in examples
        ],
    )


UNAUTHENTICATED = _error(
    "No or invalid credentials (send `Authorization: Token <key>`).",
    ("Not authenticated", "Authentication credentials were not provided.", None),
)
FORBIDDEN = _error(
    "Authenticated but not allowed (e.g. a session request without its CSRF token).",
    ("CSRF", "CSRF Failed: CSRF token missing.", None),
)
NOT_FOUND_COIN = _error("No such coin among yours.", ("Not found", "No Coin matches the given query.", None))
BAD_PHOTO_UPLOAD = _error(
    "The request is not valid; `field` names the part, `error` the problem.",
    ("Missing side", "back_image is missing: upload the coin's back photo as back_image.", "back_image"),
    ("Not an image", "back_image is not an image (or not one we can read).", "back_image"),
)
TOO_LARGE = _error(
    "A photo or the whole request is over the size or pixel limit.",
    ("Photo too large", "front_image is larger than the 10 MB limit.", "front_image"),
)
UNSUPPORTED = _error(
    "Unsupported request media type, or a photo in an unsupported image format.",
    ("Unsupported format", "front_image is in an unsupported image format.", "front_image"),
)


# --- views ----------------------------------------------------------------------------------------------------------


class BaseApi(APIView):
    """JSON in, JSON out; errors are rendered by exception_handler."""

    renderer_classes = [JSONRenderer]


class PredictApi(BaseApi):
    """POST /api/predict: the Model-Serving JSON, answered synchronously; every input is kept as the caller's coin."""

    parser_classes = [ServingJSONParser]

    @extend_schema(
        operation_id="predict",
        summary="Predict the minting years of coins",
        description=(
            "The Model-Serving JSON (the same body `mlflow models serve` accepts for this model). One year per input, "
            "in the same order, and a parallel `details` list: the interval, its level, the most likely alternatives "
            "and the coin score; or, with `null` as the year, why the input got none (`not_a_coin`, `unreadable`). Up to COINSITE_PREDICT_MAX_INPUTS inputs per request (16 by default); every photo at "
            "most COINSITE_MAX_UPLOAD_BYTES (10 MB). Every input is also stored as one of your coins (source `api`) "
            "with its prediction; their ids are in the `X-Coin-Ids` response header."
        ),
        request=PredictInputSerializer,
        responses={
            200: OpenApiResponse(
                PredictOutputSerializer,
                description="One predicted year per input, in order.",
                examples=[
                    OpenApiExample(
                        "A coin and a cat",
                        value={
                            "predictions": [1874, None],
                            "details": [
                                {
                                    "year": 1874,
                                    "low": 1873,
                                    "high": 1876,
                                    "level": 0.8,
                                    "coin_score": 0.99,
                                    "read_score": 0.93,
                                    "alternatives": [
                                        {"year": 1874, "p": 0.81},
                                        {"year": 1879, "p": 0.07},
                                        {"year": 1871, "p": 0.04},
                                    ],
                                },
                                {"rejected": "not_a_coin", "message": "This photo does not look like a coin."},
                            ],
                        },
                        response_only=True,
                    )
                ],
            ),
            400: _error(
                "The body is not the Model-Serving JSON, or a photo is not valid; `field` points at the problem.",
                ("Not JSON", "The request body is not valid JSON (Expecting value: line 1 column 1 (char 0)).", None),
                (
                    "Missing side",
                    "inputs[2].back_image_base64 is missing: every input needs both a front and a back photo.",
                    "inputs[2].back_image_base64",
                ),
                ("Too many inputs", "inputs has too many inputs (40): at most 16 per request.", "inputs"),
                (
                    "Not base64",
                    "inputs[0].front_image_base64 is not valid base64.",
                    "inputs[0].front_image_base64",
                ),
            ),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            413: _error(
                "A photo (or the whole body) is over the size or pixel limit.",
                (
                    "Photo too large",
                    "inputs[0].front_image_base64 is larger than the 10 MB limit.",
                    "inputs[0].front_image_base64",
                ),
            ),
            415: _error(
                "The body is not application/json, or a photo is in an unsupported image format.",
                (
                    "Unsupported media type",
                    "Unsupported media type 'text/plain': this endpoint accepts application/json.",
                    None,
                ),
            ),
            503: _error(
                "No model is in production yet; nothing was stored. Retry later.",
                ("No model", "No model is in production yet: predictions wait until the first model is trained.", None),
            ),
        },
        parameters=[
            OpenApiParameter(
                "X-Coin-Ids",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                response=[200],
                description="Comma-separated ids of the coins stored for the inputs, in order.",
            )
        ],
        examples=[
            OpenApiExample(
                "One coin",
                value={
                    "inputs": [{"front_image_base64": "/9j/4AAQSkZJRg...", "back_image_base64": "/9j/4AAQSkZJRg..."}]
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        serializer = PredictInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        predictions = services.coin_batch_predict(owner=request.user, pairs=serializer.validated_data["pairs"])
        output = PredictOutputSerializer(
            {
                "predictions": [None if prediction.rejected else prediction.year for prediction in predictions],
                "details": [selectors.prediction_details(prediction) for prediction in predictions],
            }
        )
        return Response(
            output.data, headers={"X-Coin-Ids": ",".join(str(prediction.coin.pk) for prediction in predictions)}
        )


@extend_schema(exclude=True)
class PredictSlashApi(PredictApi):
    """/api/predict/ (with the slash some clients add): the same endpoint, documented once."""


class CoinPagination(PageNumberPagination):
    page_size = 20
    page_query_param = "page"


class CoinListCreateApi(BaseApi):
    """GET/POST /api/coins/: the caller's own coins, newest first; upload a new one."""

    parser_classes = [UploadMultiPartParser, FormParser]

    @extend_schema(
        operation_id="coins_list",
        summary="Your coins",
        description="Your own coins, newest first, 20 per page, each with its predictions (newest first).",
        parameters=[
            OpenApiParameter("page", OpenApiTypes.INT, OpenApiParameter.QUERY, description="Page number, from 1."),
            CoinFilterSerializer,
        ],
        responses={
            200: CoinPageSerializer,
            400: _error(
                "A filter is not valid.",
                ("Bad filter", "year_min: Ensure this value is greater than or equal to 1700.", "year_min"),
            ),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: _error("No such page.", ("Invalid page", "Invalid page.", None)),
        },
    )
    def get(self, request):
        filters = CoinFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        coins = selectors.coin_list_for_user(user=request.user, **filters.validated_data)
        paginator = CoinPagination()
        page = paginator.paginate_queryset(coins, request, view=self)
        return paginator.get_paginated_response(
            CoinOutputSerializer(page, many=True, context={"request": request}).data
        )

    @extend_schema(
        operation_id="coins_create",
        summary="Upload a coin",
        description=(
            "multipart/form-data with `front_image` and `back_image` files (JPEG, PNG, WebP, HEIC; at most 10 MB each) "
            "and optional `notes`. Answers 202 with the coin (status `pending`): the prediction follows asynchronously."
        ),
        request={"multipart/form-data": CoinCreateInputSerializer},
        responses={
            202: OpenApiResponse(CoinOutputSerializer, description="Stored; the prediction follows."),
            400: BAD_PHOTO_UPLOAD,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            413: TOO_LARGE,
            415: UNSUPPORTED,
        },
    )
    def post(self, request):
        serializer = CoinCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        coin = services.coin_create_checked(
            owner=request.user, front=data["front"], back=data["back"], source=Coin.Source.API, notes=data["notes"]
        )
        coin = selectors.coin_get_for_user(user=request.user, coin_id=coin.pk)  # with the prediction, if made already
        return Response(CoinOutputSerializer(coin, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


COIN_ID = re.compile(r"[0-9]{1,18}")
COIN_ID_PARAMETER = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The coin's id.")


def _coin_for(request, raw_id: str) -> Coin:
    """The caller's coin, or 404 for anything else (someone else's coin, no such id, not an id at all)."""
    if not COIN_ID.fullmatch(raw_id):
        raise exceptions.NotFound("No Coin matches the given query.")
    return selectors.coin_get_for_user(user=request.user, coin_id=int(raw_id))


class CoinDetailApi(BaseApi):
    """GET/DELETE /api/coins/{id}/: one of the caller's coins."""

    @extend_schema(
        operation_id="coins_retrieve",
        summary="One of your coins",
        parameters=[COIN_ID_PARAMETER],
        responses={200: CoinOutputSerializer, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND_COIN},
    )
    def get(self, request, id: str):  # `id`: the name in the URL and the schema
        coin = _coin_for(request, id)
        return Response(CoinOutputSerializer(coin, context={"request": request}).data)

    @extend_schema(
        operation_id="coins_destroy",
        summary="Delete one of your coins and its photos",
        parameters=[COIN_ID_PARAMETER],
        responses={
            204: OpenApiResponse(description="Deleted."),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: NOT_FOUND_COIN,
        },
    )
    def delete(self, request, id: str):
        services.coin_delete(coin=_coin_for(request, id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProductionModelApi(BaseApi):
    """GET /api/models/production: the model version serving now."""

    @extend_schema(
        operation_id="models_production",
        summary="The model version in production",
        description="The version alias `production` points to, its cross-validated metrics and when it was promoted.",
        responses={
            200: ModelVersionOutputSerializer,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: _error("No model is in production yet.", ("No model", NO_PRODUCTION_MODEL, None)),
        },
    )
    def get(self, request):
        version = production_model_version()
        if version is None:
            raise exceptions.NotFound(NO_PRODUCTION_MODEL)
        return Response(ModelVersionOutputSerializer(version).data)
