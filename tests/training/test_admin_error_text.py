"""The owners' admin shows a failure's reason by the same masking rule as a run's error field (training.errors)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from training.admin.actions import error_text
from training.errors import ERROR_MAX_CHARS


def test_admin_error_text_masks_password_values_and_url_credentials():
    # given a failure whose message carries a password setting and a URL with credentials
    error = RuntimeError("connect failed: password=hunter2 at redis://user:s3cret@cache:6379/1")

    # when the admin turns it into the message an owner reads
    text = error_text(error)

    # then neither secret is shown, the reason still is, and the type is left to the run's error field
    assert "hunter2" not in text and "s3cret" not in text
    assert text.startswith("connect failed: password=***")
    assert "RuntimeError" not in text


def test_admin_error_text_joins_validation_messages_and_stays_short():
    # given a refused action with two reasons, one of them very long
    error = ValidationError(["already in production", "x" * 2000])

    # when shown
    text = error_text(error)

    # then both reasons appear, joined, cut to the run's limit
    assert text.startswith("already in production; xxx")
    assert len(text) <= ERROR_MAX_CHARS
