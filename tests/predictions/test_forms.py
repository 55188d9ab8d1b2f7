"""The collector pages' forms: filters that never crash, upload fields that name the side, bounded reads."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from predictions.forms import CoinFilterForm, CoinUploadForm, SignUpForm
from tests.factories import jpeg_bytes


def test_filter_form_accepts_a_year_range_and_what_to_show():
    form = CoinFilterForm({"year_min": "1800", "year_max": "1900", "show": "not_a_coin"})

    assert form.is_valid()
    assert form.selector_kwargs() == {"year_min": 1800, "year_max": 1900, "verdict": "not_a_coin"}


def test_filter_form_with_nothing_filled_in_filters_nothing():
    form = CoinFilterForm({"year_min": "", "year_max": "", "show": ""})

    assert form.selector_kwargs() == {"year_min": None, "year_max": None, "verdict": None}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"year_min": "abc"}, "Year from: Enter a whole number."),
        ({"year_max": "1600"}, "Year to: Ensure this value is greater than or equal to 1700."),
        ({"year_min": "99999"}, "Year from: Ensure this value is less than or equal to 2025."),
        ({"show": "predicted"}, "Show: Select a valid choice."),
        ({"year_min": "1900", "year_max": "1800"}, "“Year from” (1900) is after “Year to” (1800)"),
    ],
)
def test_filter_form_names_each_invalid_value(data, expected):
    form = CoinFilterForm(data)

    assert not form.is_valid()
    assert form.selector_kwargs() == {}
    assert any(expected in message for message in form.error_messages_flat())


@pytest.mark.parametrize(("missing", "label"), [("front_image", "Front photo"), ("back_image", "Back photo")])
def test_upload_form_names_the_missing_side(missing, label):
    files = {
        name: SimpleUploadedFile(f"{name}.jpg", jpeg_bytes(), content_type="image/jpeg")
        for name in ("front_image", "back_image")
        if name != missing
    }

    form = CoinUploadForm({}, files)

    assert not form.is_valid()
    assert form.errors[missing] == [
        f"{label}: no file was chosen. Add a photo of the {label.split()[0].lower()} of the coin."
    ]


def test_upload_form_lets_empty_files_through_to_the_service_check():
    files = {
        "front_image": SimpleUploadedFile("front.jpg", b"", content_type="image/jpeg"),
        "back_image": SimpleUploadedFile("back.jpg", jpeg_bytes(), content_type="image/jpeg"),
    }

    form = CoinUploadForm({}, files)

    assert form.is_valid(), form.errors
    assert form.photo_bytes("front_image") == b""


def test_upload_form_reads_at_most_one_byte_past_the_limit(settings):
    settings.COINSITE_MAX_UPLOAD_BYTES = 100
    files = {
        "front_image": SimpleUploadedFile("front.jpg", b"x" * 5000, content_type="image/jpeg"),
        "back_image": SimpleUploadedFile("back.jpg", b"y" * 50, content_type="image/jpeg"),
    }
    form = CoinUploadForm({}, files)
    assert form.is_valid()

    assert len(form.photo_bytes("front_image")) == 101
    assert form.photo_bytes("back_image") == b"y" * 50


def test_upload_inputs_accept_only_the_supported_photo_types():
    html = str(CoinUploadForm()["front_image"])

    assert 'accept="image/jpeg,image/png,image/webp,image/heic,image/heif' in html


@pytest.mark.django_db
def test_sign_up_form_creates_a_user_from_username_and_password():
    form = SignUpForm({"username": "numis", "password1": "a-long-coin-phrase-42", "password2": "a-long-coin-phrase-42"})

    assert form.is_valid(), form.errors
    user = form.save()

    assert user.check_password("a-long-coin-phrase-42")
