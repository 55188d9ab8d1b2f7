"""Probes behind TLS: /healthz, /readyz and /metrics answer plain http (no redirect) with HTTPS on; /readyz follows
the /metrics access rule and says 503 when the static files manifest is missing, naming nothing to the public."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles.storage import staticfiles_storage
from django.test import Client
from whitenoise.storage import CompressedManifestStaticFilesStorage

pytestmark = pytest.mark.django_db

PUBLIC = "203.0.113.7"  # TEST-NET-3: outside every default allowed network


@pytest.fixture
def https_on(settings):
    """What production's DJANGO_HTTPS does to the redirect (settings.py), with the exemption it sets."""
    from coinsite import settings as project

    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    assert "SECURE_REDIRECT_EXEMPT" in open(project.__file__).read()
    return settings


def test_pages_are_redirected_to_https_but_probes_are_not(https_on):
    client = Client(REMOTE_ADDR="10.0.0.5")

    assert client.get("/accounts/login/").status_code == 301
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)


def test_readyz_refuses_the_public_and_names_nothing(https_on):
    response = Client(REMOTE_ADDR=PUBLIC).get("/readyz")

    assert response.status_code == 403
    text = response.content.decode()
    assert "database" not in text and "sqlite" not in text and "checks" not in text
    assert "METRICS_TOKEN" in text


def test_readyz_answers_the_bearer_token_from_anywhere(https_on):
    https_on.METRICS_TOKEN = "s3cret-probe-token"

    refused = Client(REMOTE_ADDR=PUBLIC).get("/readyz", HTTP_AUTHORIZATION="Bearer wrong")
    allowed = Client(REMOTE_ADDR=PUBLIC).get("/readyz", HTTP_AUTHORIZATION="Bearer s3cret-probe-token")

    assert refused.status_code == 403
    assert allowed.status_code in (200, 503) and "checks" in allowed.json()


def test_readyz_is_503_when_the_static_manifest_is_missing(https_on, tmp_path):
    # given a process started before collectstatic: its storage found no manifest in an empty STATIC_ROOT
    staticfiles_storage.hashed_files  # noqa: B018 (set the lazy storage up, to put it back afterwards)
    started = staticfiles_storage._wrapped
    staticfiles_storage._wrapped = CompressedManifestStaticFilesStorage(location=tmp_path)
    try:
        response = Client(REMOTE_ADDR="127.0.0.1").get("/readyz")
    finally:
        staticfiles_storage._wrapped = started

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["static"]["ok"] is False and "collectstatic" in body["checks"]["static"]["detail"]
    assert "static" in body["status"]


def test_readyz_static_check_passes_with_the_manifest(https_on):
    response = Client(REMOTE_ADDR="127.0.0.1").get("/readyz")

    assert response.json()["checks"]["static"]["ok"] is True
