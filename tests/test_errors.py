"""A request Django refuses before any view (too many fields or files, too large) gets the site's 400 page naming
the problem, or the API's JSON error shape under /api/."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_too_many_form_fields_get_a_page_that_names_the_problem(client, collector, settings):
    settings.DEBUG = False
    client.force_login(collector)
    fields = {f"field{n}": "x" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}

    response = client.post(reverse("coin-upload"), fields)

    assert response.status_code == 400
    page = response.content.decode()
    assert "more than 1,000 fields" in page and "Back to my coins" in page


def test_too_many_fields_to_the_api_get_its_json_error_shape(client, collector, settings):
    client.force_login(collector)
    fields = {f"field{n}": "x" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}

    response = client.post("/api/coins/", fields)

    assert response.status_code == 400
    assert "more than 1,000 fields" in response.json()["error"]
