"""The API's one error shape and its parsers.

Every error, whatever raised it, leaves as {"error": "<what is wrong, in words>", "field": "<path or null>"} with the
status HTTP prescribes (400, 401, 403, 404, 405, 413, 415, 429, 503), never as a 500 page, a stack trace or an echo
of the payload. `exception_handler` is the REST_FRAMEWORK EXCEPTION_HANDLER.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from registry.outcomes import NoProductionModel
from training.ml import photo_errors

logger = logging.getLogger(__name__)


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
    if isinstance(exc, photo_errors.ImageError):  # its message names the problem ("the image file is truncated ...")
        return _error_response(f"{exc.field}: {exc}" if exc.field else str(exc), exc.field, exc.http_status)
    if isinstance(exc, NoProductionModel):
        return _error_response(str(exc), None, status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "60"})
    if isinstance(exc, RequestDataTooBig):
        return _error_response(_body_limit_message(), None, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):  # too many multipart fields/files, a malformed request
        return _error_response(_refusal_message(exc), None, status.HTTP_400_BAD_REQUEST)
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


def _refusal_message(exc: SuspiciousOperation) -> str:
    """Django's own words name its setting; these name the limit (as the site's 400 page does)."""
    if isinstance(exc, TooManyFieldsSent):
        return f"The request was refused: it sent more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} fields."
    if isinstance(exc, TooManyFilesSent):
        return f"The request was refused: it sent more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES:,} files."
    return f"The request was refused: {exc}"


def _unsupported_media(exc, context) -> str:
    media_type = str(exc.args[0] if exc.args else "")[:80] or "(none)"
    view = context.get("view")
    accepted = ", ".join(parser.media_type for parser in getattr(view, "parser_classes", []))
    return f"Unsupported media type {media_type!r}: this endpoint accepts {accepted}."


# --- parsers --------------------------------------------------------------------------------------------------------


class CheckedJSONParser(JSONParser):
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
