"""A Content-Security-Policy header on every response, with a fresh nonce per request.

Django 5.2 has no CSP of its own, and the policy is small enough not to need a package. Pages load scripts and styles
only from this site (static/ through whitenoise); no template has an inline script, event handler or style attribute.
Should a page ever need an inline element, it carries ``nonce="{{ csp_nonce }}"`` (the context processor below):
the nonce changes with every response, so an injected element cannot guess it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"
# Django's own debug pages (DEBUG only: the technical 404 and 500) are built of inline styles and scripts without a
# nonce (before Django 6.0); they go without the header so that `make run` shows them readable.
DEBUG_PAGE_STATUSES = frozenset({404, 500})

# {nonce} is replaced per request. img-src: photos previewed before upload are blob: URLs; admin and Swagger UI icons
# are data: URLs in their stylesheets. frame-ancestors 'none' is X-Frame-Options DENY for browsers that read CSP.
POLICY = (
    ("default-src", "'self'"),
    ("script-src", "'self' 'nonce-{nonce}'"),
    ("style-src", "'self' 'nonce-{nonce}'"),
    ("img-src", "'self' data: blob:"),
    ("font-src", "'self' data:"),
    ("connect-src", "'self'"),
    ("object-src", "'none'"),
    ("base-uri", "'self'"),
    ("frame-ancestors", "'none'"),
    ("form-action", "'self'"),
)


def policy(nonce: str) -> str:
    """The header's value for one response."""
    return "; ".join(f"{name} {sources.format(nonce=nonce)}" for name, sources in POLICY)


class ContentSecurityPolicyMiddleware:
    """Sets request.csp_nonce before the view runs and the policy header on its response (unless the view set one,
    or it is one of Django's debug pages)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.csp_nonce = secrets.token_urlsafe(16)
        response = self.get_response(request)
        if HEADER not in response.headers and not (settings.DEBUG and response.status_code in DEBUG_PAGE_STATUSES):
            response.headers[HEADER] = policy(request.csp_nonce)
        return response


def csp_nonce(request: HttpRequest) -> dict[str, str]:
    """Template context processor: ``{{ csp_nonce }}`` for the rare inline <script> or <style> a page needs."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
