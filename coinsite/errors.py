"""The site's 400 page: the request's problem in plain words (Django's own says only "Bad Request (400)")."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def bad_request_message(exception: Exception | None) -> str:
    if isinstance(exception, TooManyFieldsSent):
        return f"The form sent more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} fields. Send only the form's own."
    if isinstance(exception, TooManyFilesSent):
        return f"The form sent more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files. Send one front and one back photo."
    if isinstance(exception, RequestDataTooBig):
        mib = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
        return f"The request is larger than {mib:.0f} MiB. Send smaller photos."
    return "The request could not be read. Reload the page and try again."


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: JSON in the API's error shape under /api/, the site's page elsewhere."""
    message = bad_request_message(exception)
    if request.path.startswith("/api/"):
        return JsonResponse({"error": message, "field": None}, status=400)
    return render(request, "400.html", {"message": message}, status=400)
