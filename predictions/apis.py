"""The DRF API: thin views (InputSerializer -> service -> OutputSerializer).

Errors leave in the API's one error shape (predictions.api_errors), throttled calls as a 429 that says when to retry
(predictions.throttles), and the schema of every operation lists exactly the answers it can give
(predictions.api_schema holds its examples and error answers).
"""

from __future__ import annotations

import re

from django.contrib.auth import authenticate
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiRequest, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from coinsite.lockout import signin_refusal
from registry.selectors import production_model_version

from . import quota, selectors, services
from .api_errors import CheckedJSONParser, UploadMultiPartParser
from .api_schema import (
    BAD_PHOTO_UPLOAD,
    BODY_TOO_LARGE,
    COIN_ID_PARAMETER,
    COIN_IDS_HEADER,
    FORBIDDEN,
    NOT_FOUND_COIN,
    PAGE_PARAMETER,
    PHOTO_MEDIA_TYPES,
    PREDICT_ANSWER_EXAMPLE,
    PREDICT_BODY_EXAMPLES,
    PREDICT_EXAMPLE,
    RETRY_AFTER,
    RETRY_AFTER_503,
    TOKEN_ANSWER_EXAMPLE,
    TOKEN_EXAMPLE,
    TOO_LARGE_UPLOAD,
    UNAUTHENTICATED,
    UNSUPPORTED_UPLOAD,
    error_response,
    throttled,
)
from .authentication import token_issue, token_revoke
from .models import Coin
from .serializers import (
    CoinCreateInputSerializer,
    CoinFilterSerializer,
    CoinOutputSerializer,
    CoinPageSerializer,
    ModelVersionOutputSerializer,
    PredictInputSerializer,
    PredictOutputSerializer,
    TokenInputSerializer,
    TokenOutputSerializer,
)
from .throttles import ClientAddressThrottle, ScopedThrottle, retry_after

NO_PRODUCTION_MODEL = "No model is in production yet"
WRONG_CREDENTIALS = "The username or password is wrong."


class BaseApi(APIView):
    """JSON in, JSON out; errors are rendered by api_errors.exception_handler.

    `throttle_scopes` maps an HTTP method to its rate's scope (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]); methods not
    named are not counted."""

    renderer_classes = [JSONRenderer]
    throttle_classes = [ScopedThrottle]
    throttle_scopes: dict[str, str] = {}

    def check_throttles(self, request) -> None:
        """DRF's check (run after authentication, before the handler reads the body), with a 429 that names the limit
        and says when to retry, and a Retry-After rounded up to whole seconds."""
        for throttle in self.get_throttles():
            if not throttle.allow_request(request, self):
                refusal = exceptions.Throttled(detail=throttle.refusal(request.method, request.path))
                refusal.wait = retry_after(throttle.wait())  # set after: DRF would add its own sentence about it
                raise refusal


# --- POST /api/predict ----------------------------------------------------------------------------------------------


class _PredictAutoSchema(AutoSchema):
    """The body is required: each of its four forms is optional on its own (the component's oneOf says one of them
    must be there), which drf-spectacular would otherwise read as an optional body."""

    def _get_request_for_media_type(self, serializer, direction="request"):
        schema, _required = super()._get_request_for_media_type(serializer, direction)
        return schema, True


class PredictApi(BaseApi):
    """POST /api/predict: the Model-Serving JSON, answered synchronously; every input is kept as the caller's coin."""

    parser_classes = [CheckedJSONParser]
    throttle_scopes = {"POST": "predict"}
    schema = _PredictAutoSchema()

    @extend_schema(
        operation_id="predict",
        summary="Predict the minting years of coins",
        description=(
            "The Model-Serving JSON, in any of the four bodies `mlflow models serve` accepts for this model: "
            "`inputs`, `dataframe_records` or `instances` (a list of objects with both photos) or `dataframe_split` "
            '(`columns` and `data` rows); exactly one of them, and optionally `params` ({"details": true}, the '
            "model's MLflow parameter: the answer here always has both lists). One year per input, in the same "
            "order, and a parallel `details` list: the interval `low`..`high` holding `level` of the model's belief "
            "(0.95 for the date reader, the model's configured `interval_level`), the most likely alternatives and "
            "the coin score; or, with `null` as the year, why the input got none (`not_a_coin`, `unreadable`) with "
            "the scores behind it. Errors name the place in the body that was sent (`instances[2].back_image_base64`, "
            "`dataframe_split.data[2][1]`). "
            "Up to COINSITE_PREDICT_MAX_INPUTS inputs per request (16 by default); every photo a JPEG, PNG, WebP, "
            "HEIC/HEIF, AVIF, BMP or TIFF file of at most COINSITE_MAX_UPLOAD_BYTES (10 MiB) and "
            "COINSITE_MAX_IMAGE_PIXELS (50 MP), in base64 (standard or URL-safe alphabet, padding optional, line "
            "breaks and a `data:image/...;base64,` prefix allowed). Every input is also stored as one of your coins "
            "(source `api`) with its prediction; their ids are in the `X-Coin-Ids` response header."
        ),
        request=PredictInputSerializer,
        responses={
            200: OpenApiResponse(
                PredictOutputSerializer,
                description="One predicted year per input, in order.",
                examples=[PREDICT_ANSWER_EXAMPLE],
            ),
            400: error_response(
                "The body is not the Model-Serving JSON, or a photo is not valid (not base64, empty, not an image, "
                "truncated); `field` points at the problem where the body put it.",
                ("Not JSON", "The request body is not valid JSON (Expecting value: line 1 column 1 (char 0)).", None),
                (
                    "Missing side",
                    "inputs[2].back_image_base64 is missing: every input needs both a front and a back photo.",
                    "inputs[2].back_image_base64",
                ),
                ("Too many inputs", "inputs has too many inputs (40): at most 16 per request.", "inputs"),
                (
                    "Two bodies at once",
                    "The body has both inputs and instances: send the coins under exactly one of inputs, "
                    "dataframe_records, dataframe_split, instances.",
                    None,
                ),
                (
                    "Split row not base64",
                    "dataframe_split.data[0][1]: the image is not valid base64 (Incorrect padding)",
                    "dataframe_split.data[0][1]",
                ),
                (
                    "Not base64",
                    "inputs[0].front_image_base64: the image is not valid base64 (Incorrect padding)",
                    "inputs[0].front_image_base64",
                ),
                (
                    "Not an image",
                    "inputs[1].back_image_base64: the file is not an image (no known image format)",
                    "inputs[1].back_image_base64",
                ),
            ),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            413: error_response(
                "A photo is over the size, pixel or decoding-cost limit, or the whole body is over the request limit.",
                (
                    "Photo too large",
                    "inputs[0].front_image_base64: the image is 12.0 MiB, more than the limit of 10.0 MiB",
                    "inputs[0].front_image_base64",
                ),
            ),
            415: error_response(
                "The body is not application/json, or a photo is in a format the API does not read (GIF, PDF...).",
                (
                    "Unsupported media type",
                    "Unsupported media type 'text/plain': this endpoint accepts application/json.",
                    None,
                ),
                (
                    "Unsupported format",
                    "inputs[0].back_image_base64: the image format GIF is not supported (use JPEG, PNG, WEBP, "
                    "HEIF/HEIC, AVIF, BMP or TIFF)",
                    "inputs[0].back_image_base64",
                ),
            ),
            429: throttled("POST", "/api/predict", variable="COINSITE_THROTTLE_PREDICT", default="30 per minute"),
            503: error_response(
                "No model is in production yet; nothing was stored. `Retry-After` says when to try again.",
                ("No model", "No model is in production yet: predictions wait until the first model is trained.", None),
            ),
        },
        parameters=[COIN_IDS_HEADER, RETRY_AFTER, RETRY_AFTER_503],
        examples=[PREDICT_EXAMPLE, *PREDICT_BODY_EXAMPLES],
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


# --- /api/coins/ ----------------------------------------------------------------------------------------------------


PAGE_NUMBER = re.compile(r"[1-9][0-9]{0,17}")


class CoinPagination(PageNumberPagination):
    """20 coins a page. The page is what the schema says, an integer from 1: DRF's paginator would also take an empty
    `?page=` (as page 1), `last`, `+2` or ` 2`; those are a 404 like any page that does not exist."""

    page_size = 20
    page_query_param = "page"

    def get_page_number(self, request, paginator) -> int:
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if not PAGE_NUMBER.fullmatch(raw):
            raise exceptions.NotFound(str(self.invalid_page_message))
        return int(raw)


class CoinListCreateApi(BaseApi):
    """GET/POST /api/coins/: the caller's own coins, newest first; upload a new one."""

    parser_classes = [UploadMultiPartParser, FormParser]
    throttle_scopes = {"POST": "upload"}

    @extend_schema(
        operation_id="coins_list",
        summary="Your coins",
        description="Your own coins, newest first, 20 per page, each with its predictions (newest first).",
        parameters=[PAGE_PARAMETER, CoinFilterSerializer],
        responses={
            200: CoinPageSerializer,
            400: error_response(
                "A filter is not valid.",
                ("Bad filter", "year_min: Ensure this value is greater than or equal to 1700.", "year_min"),
            ),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: error_response("No such page.", ("Invalid page", "Invalid page.", None)),
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
            "multipart/form-data with `front_image` and `back_image` files (JPEG, PNG, WebP, HEIC/HEIF, AVIF, BMP or "
            "TIFF; at most COINSITE_MAX_UPLOAD_BYTES, 10 MiB, and COINSITE_MAX_IMAGE_PIXELS, 50 MP, each) and optional "
            "`notes`. The API reads each file's content, not the part's Content-Type. Answers 202 with the coin "
            "(status `pending`): the prediction follows asynchronously."
        ),
        request={
            "multipart/form-data": OpenApiRequest(
                CoinCreateInputSerializer,
                encoding={side: {"contentType": PHOTO_MEDIA_TYPES} for side in ("front_image", "back_image")},
            )
        },
        responses={
            202: OpenApiResponse(CoinOutputSerializer, description="Stored; the prediction follows."),
            400: BAD_PHOTO_UPLOAD,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            413: TOO_LARGE_UPLOAD,
            415: UNSUPPORTED_UPLOAD,
            429: throttled("POST", "/api/coins/", variable="COINSITE_THROTTLE_UPLOAD", default="30 per minute"),
        },
        parameters=[RETRY_AFTER],
    )
    def post(self, request):
        serializer = CoinCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        quota.storage_quota_check(owner=request.user, incoming=len(data["front"].data) + len(data["back"].data))
        coin = services.coin_create_checked(
            owner=request.user, front=data["front"], back=data["back"], source=Coin.Source.API, notes=data["notes"]
        )
        coin = selectors.coin_get_for_user(user=request.user, coin_id=coin.pk)  # with the prediction, if made already
        return Response(CoinOutputSerializer(coin, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


COIN_ID = re.compile(r"[0-9]{1,18}")


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


# --- /api/models/production -----------------------------------------------------------------------------------------


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
            404: error_response("No model is in production yet.", ("No model", NO_PRODUCTION_MODEL, None)),
        },
    )
    def get(self, request):
        version = production_model_version()
        if version is None:
            raise exceptions.NotFound(NO_PRODUCTION_MODEL)
        return Response(ModelVersionOutputSerializer(version).data)


# --- /api/token -----------------------------------------------------------------------------------------------------


class TokenApi(BaseApi):
    """POST /api/token: a token for a username and password; DELETE /api/token: revoke the caller's token.

    Both are counted per client address (ClientAddressThrottle, scope `token`): this is where passwords are guessed.
    """

    parser_classes = [CheckedJSONParser, FormParser, UploadMultiPartParser]
    throttle_classes = [ClientAddressThrottle]
    throttle_scopes = {"POST": "token", "DELETE": "token"}

    def _posting(self) -> bool:
        return getattr(self.request, "method", None) == "POST"  # no request while the schema is generated

    def get_authenticators(self):
        # POST carries its credentials in the body: a stale or expired token sent along must not stand in the way of
        # getting a new one (and no session means no CSRF check on what is a login).
        return [] if self._posting() else super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if self._posting() else super().get_permissions()

    @extend_schema(
        operation_id="token_create",
        summary="Get an API token",
        description=(
            "Your username and password (JSON or a form, urlencoded or multipart) for the token to send as `Authorization: Token <key>`. The "
            "same token until it is revoked (DELETE) or, when COINSITE_TOKEN_TTL_HOURS is set, until it expires; "
            "asking again then gives a new one. Wrong credentials answer 400 without saying whether the user exists."
        ),
        request={
            media_type: TokenInputSerializer
            for media_type in ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")
        },
        auth=[],
        responses={
            200: OpenApiResponse(TokenOutputSerializer, description="Your token.", examples=[TOKEN_ANSWER_EXAMPLE]),
            400: error_response(
                "Wrong or missing credentials (the answer never says whether the user exists).",
                ("Wrong credentials", WRONG_CREDENTIALS, None),
                ("Missing password", "password is missing: send your username and password.", "password"),
            ),
            413: BODY_TOO_LARGE,
            415: error_response(
                "The body is neither JSON nor a form.",
                (
                    "Unsupported media type",
                    "Unsupported media type 'text/plain': this endpoint accepts application/json, "
                    "application/x-www-form-urlencoded, multipart/form-data.",
                    None,
                ),
            ),
            429: throttled(
                "POST", "/api/token", variable="COINSITE_THROTTLE_TOKEN", default="10 per minute", per="address"
            ),
        },
        parameters=[RETRY_AFTER],
        examples=[TOKEN_EXAMPLE],
    )
    def post(self, request):
        serializer = TokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # An account over its limit or locked (coinsite.lockout) is told so, with when to retry, before its password
        # is hashed; any username may be locked, so this says nothing about which accounts exist. The address was
        # counted by this view's `token` throttle.
        refusal = signin_refusal(request, serializer.validated_data["username"], per_address=False)
        user = None if refusal else authenticate(request=request, **serializer.validated_data)
        refusal = refusal or getattr(request, "signin_refused", None)  # the backend's: locked or busy meanwhile
        if refusal:
            raise exceptions.Throttled(wait=refusal[1], detail=refusal[0])
        if user is None:
            raise exceptions.ValidationError(WRONG_CREDENTIALS)
        return Response(TokenOutputSerializer(token_issue(user=user)).data)

    @extend_schema(
        operation_id="token_destroy",
        summary="Revoke your API token",
        description="The token you authenticate with (or your token, for a signed-in session) stops working at once.",
        request=None,
        responses={
            204: OpenApiResponse(description="Revoked (or there was none)."),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            429: throttled(
                "DELETE", "/api/token", variable="COINSITE_THROTTLE_TOKEN", default="10 per minute", per="address"
            ),
        },
        parameters=[RETRY_AFTER],
    )
    def delete(self, request):
        token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
