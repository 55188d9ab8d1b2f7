"""The models and the committed migrations agree: a model change without its migration (for example an on_delete
turned from PROTECT to CASCADE) would deploy code whose database does not do what the code says. `make lint` runs the
same check; this keeps it in every test pass too."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_every_model_change_has_its_migration():
    output = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=output, stderr=output)
    except SystemExit:  # --check exits 1 when a migration is missing
        pytest.fail(f"makemigrations --check found model changes without a migration:\n{output.getvalue()}")
