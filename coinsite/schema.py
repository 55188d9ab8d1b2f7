"""The OpenAPI schema (/api/schema/), generated once per process, under a lock, and served from memory.

Why: drf-spectacular generates the schema on every request, and generation is not thread-safe: each view class shares
one schema inspector whose `view` one generation sets while another clears it (drf-spectacular #1122/#1123:
"Schema generation REQUIRES a view instance"). Under gunicorn's threads, 1 to 6 of the first 8 concurrent requests
after a worker start answered 500. The schema changes only with the code, so one generation per process (per API
version and language) serves every request; gunicorn.conf.py's post_worker_init makes it before the first request.
"""

from __future__ import annotations

import threading

from django.utils import translation
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.views import SpectacularAPIView
from rest_framework.response import Response

_lock = threading.Lock()
_schemas: dict[tuple[str | None, str | None], dict] = {}


def schema_get(*, version: str | None = None, request=None) -> dict:
    """The schema of this process for an API version (and the active language), generated on first use."""
    key = (version, translation.get_language())
    with _lock:
        if key not in _schemas:
            _schemas[key] = SchemaGenerator(api_version=version).get_schema(request=request, public=True)
        return _schemas[key]


def schema_forget() -> None:
    """Drop the generated schemas (tests that change the URLconf or settings the schema reads)."""
    with _lock:
        _schemas.clear()


class SchemaView(SpectacularAPIView):
    """SpectacularAPIView answering from schema_get() instead of generating per request."""

    def _get_schema_response(self, request) -> Response:
        version = self.api_version or request.version or self._get_version_parameter(request)
        return Response(
            data=schema_get(version=version, request=request),
            headers={"Content-Disposition": f'inline; filename="{self._get_filename(request, version)}"'},
        )
