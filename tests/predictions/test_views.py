"""The collector pages: who sees what, the upload flow and its errors, filters, pagination and the footer."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from predictions.models import Coin
from tests.factories import CoinFactory, ModelVersionFactory, PredictionFactory, jpeg_bytes
from tests.pages import page_text as _text

pytestmark = pytest.mark.django_db


# --- helpers ---------------------------------------------------------------------------------------------------------


def photo(data: bytes, name: str = "coin.jpg", content_type: str = "image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 150, 40)).save(buffer, "GIF")
    return buffer.getvalue()


def files_under(root: Path) -> list[Path]:
    return [path for path in Path(root).rglob("*") if path.is_file()] if Path(root).exists() else []


def page_urls(coin: Coin) -> dict[str, str]:
    return {
        "coin-detail": reverse("coin-detail", kwargs={"coin_id": coin.id}),
        "coin-status": reverse("coin-status", kwargs={"coin_id": coin.id}),
        "coin-image-front": reverse("coin-image", kwargs={"coin_id": coin.id, "side": "front"}),
        "coin-image-back": reverse("coin-image", kwargs={"coin_id": coin.id, "side": "back"}),
    }


@pytest.fixture
def coin(collector):
    return CoinFactory(owner=collector)


# --- who sees what ---------------------------------------------------------------------------------------------------


def test_anonymous_visitor_gets_the_landing_page_at_home(client):
    response = client.get(reverse("coin-list"))

    assert response.status_code == 200
    assert b"What year is your coin?" in response.content
    assert reverse("signup").encode() in response.content
    assert reverse("login").encode() in response.content


@pytest.mark.parametrize("name", ["coin-detail", "coin-status", "coin-image-front", "coin-image-back"])
def test_anonymous_visitor_is_sent_to_sign_in_for_coin_pages(client, coin, name):
    url = page_urls(coin)[name]

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


def test_anonymous_visitor_is_sent_to_sign_in_for_the_upload_page(client):
    response = client.get(reverse("coin-upload"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["coin-detail", "coin-status", "coin-image-front", "coin-image-back"])
def test_collector_opens_own_coin_pages(client, collector, coin, name):
    client.force_login(collector)

    response = client.get(page_urls(coin)[name])

    assert response.status_code == 200


def test_collector_opens_home_and_upload_pages(client, collector):
    client.force_login(collector)

    assert client.get(reverse("coin-list")).status_code == 200
    assert client.get(reverse("coin-upload")).status_code == 200


@pytest.mark.parametrize("name", ["coin-detail", "coin-status", "coin-image-front", "coin-image-back"])
def test_collector_cannot_see_other_collectors_coin(client, other_collector, coin, name):
    client.force_login(other_collector)

    response = client.get(page_urls(coin)[name])

    assert response.status_code == 404


def test_collector_cannot_delete_other_collectors_coin(client, other_collector, coin):
    client.force_login(other_collector)

    response = client.post(reverse("coin-delete", kwargs={"coin_id": coin.id}))

    assert response.status_code == 404
    assert Coin.objects.filter(pk=coin.pk).exists()


@pytest.mark.parametrize("role_user", ["curator", "model_owner"])
def test_curators_and_model_owners_see_any_coins_photos(client, coin, role_user, request):
    client.force_login(request.getfixturevalue(role_user))

    response = client.get(page_urls(coin)["coin-image-front"])

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"


def test_curator_does_not_get_another_collectors_coin_page(client, curator, coin):
    client.force_login(curator)

    assert client.get(page_urls(coin)["coin-detail"]).status_code == 404


# --- photos ----------------------------------------------------------------------------------------------------------


def test_coin_photo_is_served_privately_with_its_type_and_a_validator(client, collector, coin):
    client.force_login(collector)
    url = page_urls(coin)["coin-image-back"]

    response = client.get(url)
    body = b"".join(response.streaming_content)

    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private, max-age=86400"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Cookie" in response["Vary"]
    with coin.back_image.open("rb") as stored:
        assert body == stored.read()
    assert coin.back_sha256 in response["ETag"]


def test_coin_photo_revalidation_answers_not_modified(client, collector, coin):
    client.force_login(collector)
    url = page_urls(coin)["coin-image-front"]
    etag = client.get(url)["ETag"]

    response = client.get(url, headers={"If-None-Match": etag})

    assert response.status_code == 304


def test_coin_photo_thumbnail_is_a_small_jpeg(client, collector):
    big = CoinFactory(
        owner=collector,
        front_image=SimpleUploadedFile("front.png", _png_bytes((1200, 900)), content_type="image/png"),
    )
    client.force_login(collector)

    response = client.get(page_urls(big)["coin-image-front"] + "?size=thumb")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as thumb:
        assert thumb.format == "JPEG"
        # at most 320 px, and a whole box reduction within 0.85 of it is the whole resize: 1200 / 4 = 300 px
        assert thumb.size == (300, 225)


def test_coin_photo_in_a_format_browsers_cannot_show_is_served_as_jpeg(client, collector):
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (120, 100, 80)).save(buffer, "BMP")
    bmp_coin = CoinFactory(owner=collector, back_image=SimpleUploadedFile("back.bmp", buffer.getvalue()))
    client.force_login(collector)

    response = client.get(page_urls(bmp_coin)["coin-image-back"])

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as shown:
        assert (shown.format, shown.size) == ("JPEG", (300, 200))


def test_coin_photo_url_accepts_only_front_or_back(client, collector, coin):
    client.force_login(collector)

    assert client.get(f"/coins/{coin.id}/side/").status_code == 404


def test_media_url_is_not_served(client, collector, coin):
    client.force_login(collector)

    assert client.get(f"/media/{coin.front_image.name}").status_code == 404


def _png_bytes(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 100, 80)).save(buffer, "PNG")
    return buffer.getvalue()


# --- upload ----------------------------------------------------------------------------------------------------------


def test_upload_page_tells_the_browser_the_size_limit(client, collector, settings):
    settings.COINSITE_MAX_UPLOAD_BYTES = 5 * 1024 * 1024
    settings.COINSITE_MAX_IMAGE_PIXELS = 24_000_000
    client.force_login(collector)

    response = client.get(reverse("coin-upload"))

    assert f'data-max-bytes="{5 * 1024 * 1024}"'.encode() in response.content
    assert b'data-max-pixels="24000000"' in response.content  # the same limit the server checks
    assert b"up to 5 MB and 24 megapixels each" in response.content
    assert b'capture="environment"' in response.content


def test_upload_with_good_photos_creates_a_coin_and_redirects_to_it(
    client, collector, settings, no_model, django_capture_on_commit_callbacks
):
    # given a collector and no model in production
    client.force_login(collector)
    front, back = jpeg_bytes(seed=1), jpeg_bytes(color=(60, 60, 90), seed=2)

    # when they upload two good photos (the prediction task runs eagerly on commit)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            reverse("coin-upload"), {"front_image": photo(front, "front.jpg"), "back_image": photo(back, "back.jpg")}
        )

    # then the coin is stored with both photos, the page redirects to it, and the coin waits for a model
    coin = Coin.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("coin-detail", kwargs={"coin_id": coin.id})
    assert len(callbacks) == 1
    assert coin.owner == collector
    assert coin.source == Coin.Source.UPLOAD
    assert coin.status == Coin.Status.PENDING
    assert not coin.predictions.exists()
    stored_names = {str(path.relative_to(settings.MEDIA_ROOT)) for path in files_under(settings.MEDIA_ROOT)}
    names = [coin.front_image.name, coin.back_image.name, coin.front_thumbnail.name, coin.back_thumbnail.name]
    assert stored_names == set(names) and len(stored_names) == 4  # two photos and their thumbnails, made at upload
    with coin.front_image.open("rb") as stored:
        assert stored.read() == front

    page = client.get(response["Location"])
    assert b"Looking at your photos" in page.content
    assert b"No model is in production yet" in page.content
    assert client.get(reverse("coin-status", kwargs={"coin_id": coin.id})).json()["status"] == "pending"


@pytest.mark.slow
def test_upload_with_a_model_in_production_is_dated_before_the_page_returns(
    client, collector, production_model, django_capture_on_commit_callbacks
):
    # given a collector and a (tiny, real) model in production
    client.force_login(collector)

    # when they upload two photos (Celery eager: the prediction runs on commit, inside the request)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("coin-upload"),
            {"front_image": photo(jpeg_bytes(seed=4)), "back_image": photo(jpeg_bytes(seed=5))},
        )

    # then the coin page shows the year in words and the version that made it
    coin = Coin.objects.get()
    prediction = coin.predictions.get()
    assert coin.status == Coin.Status.PREDICTED
    assert prediction.model_version.version == production_model
    page = client.get(response["Location"])
    text = _text(page)
    in_words = f"{prediction.year}, likely {prediction.interval_low}–{prediction.interval_high}"
    assert (in_words if prediction.interval_low != prediction.interval_high else str(prediction.year)) in text
    assert f"Predicted by coin-year v{production_model}" in text


def _upload_case(name: str, settings) -> tuple[dict, int, list[str]]:
    """(files to post, expected status, words the error message must contain)."""
    good = jpeg_bytes()
    truncated = jpeg_bytes(size=(400, 400), seed=3)
    cases = {
        "missing side": ({"front_image": photo(good)}, 400, ["Back photo", "no file was chosen"]),
        "zero bytes": ({"front_image": photo(b""), "back_image": photo(good)}, 400, ["Front photo", "empty"]),
        "text file": (
            {"front_image": photo(good), "back_image": photo(b"just some notes\n" * 20, "notes.txt", "text/plain")},
            400,
            ["Back photo", "not an image"],
        ),
        "truncated jpeg": (
            {"front_image": photo(truncated[: len(truncated) // 2]), "back_image": photo(good)},
            400,
            ["Front photo", "truncated"],
        ),
        "gif unsupported": (
            {"front_image": photo(good), "back_image": photo(gif_bytes(), "coin.gif", "image/gif")},
            415,
            ["Back photo", "GIF"],
        ),
        "over size limit": (
            {"front_image": photo(good), "back_image": photo(good)},
            413,
            ["Front photo", "more than the limit"],
        ),
        "over pixel limit": ({"front_image": photo(good), "back_image": photo(good)}, 413, ["Front photo", "pixels"]),
    }
    if name == "over size limit":
        settings.COINSITE_MAX_UPLOAD_BYTES = len(good) - 1
    if name == "over pixel limit":
        settings.COINSITE_MAX_IMAGE_PIXELS = 100
    return cases[name]


@pytest.mark.parametrize(
    "case",
    [
        "missing side",
        "zero bytes",
        "text file",
        "truncated jpeg",
        "gif unsupported",
        "over size limit",
        "over pixel limit",
    ],
)
def test_bad_upload_is_refused_with_the_problem_named_and_nothing_left_behind(
    client, collector, settings, case, django_capture_on_commit_callbacks
):
    # given a collector and a bad pair of photos
    client.force_login(collector)
    files, expected_status, words = _upload_case(case, settings)

    # when they upload it
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("coin-upload"), files)

    # then the form comes back with the HTTP status and a message naming the side and the problem
    assert response.status_code == expected_status
    errors = [str(error) for field_errors in response.context["form"].errors.values() for error in field_errors]
    assert any(all(word.lower() in error.lower() for word in words) for error in errors), errors
    assert b"These photos could not be used" in response.content
    # and nothing was stored
    assert Coin.objects.count() == 0
    assert files_under(settings.MEDIA_ROOT) == []


def test_upload_page_refuses_other_methods(client, collector):
    client.force_login(collector)

    assert client.put(reverse("coin-upload")).status_code == 405


# --- the coin page ---------------------------------------------------------------------------------------------------


def test_coin_page_shows_the_year_in_words_and_the_model_that_made_it(client, collector):
    version = ModelVersionFactory(version=3, metrics={"mae": 7.25})
    prediction = PredictionFactory(
        coin=CoinFactory(owner=collector, status=Coin.Status.PREDICTED),
        year=1874,
        interval_low=1869,
        interval_high=1879,
        model_version=version,
    )
    client.force_login(collector)

    response = client.get(reverse("coin-detail", kwargs={"coin_id": prediction.coin_id}))
    text = _text(response)

    assert "1874, likely 1869–1879" in text
    assert "Predicted by coin-year v3" in text
    assert "Verified by a curator Not yet" in text
    assert '<div data-state="pending" hidden>' in response.content.decode()


def test_coin_page_shows_the_curator_verified_year(client, collector):
    coin = CoinFactory(owner=collector, status=Coin.Status.PREDICTED, verified_year=1876)
    PredictionFactory(coin=coin, year=1874)
    client.force_login(collector)

    text = _text(client.get(reverse("coin-detail", kwargs={"coin_id": coin.id})))

    assert "Verified by a curator 1876" in text


def test_coin_page_of_a_failed_prediction_says_why(client, collector):
    coin = CoinFactory(owner=collector, status=Coin.Status.FAILED, status_detail="The photo is truncated")
    client.force_login(collector)

    text = _text(client.get(reverse("coin-detail", kwargs={"coin_id": coin.id})))

    assert "The model could not read these photos: The photo is truncated." in text


def test_pending_coin_page_refreshes_itself(client, collector, coin):
    client.force_login(collector)

    html = client.get(reverse("coin-detail", kwargs={"coin_id": coin.id})).content.decode()

    assert f'data-status-url="{reverse("coin-status", kwargs={"coin_id": coin.id})}"' in html
    assert 'data-status="pending"' in html
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in html


def test_predicted_coin_page_does_not_refresh(client, collector):
    coin = PredictionFactory(coin=CoinFactory(owner=collector, status=Coin.Status.PREDICTED)).coin
    client.force_login(collector)

    html = client.get(reverse("coin-detail", kwargs={"coin_id": coin.id})).content.decode()

    assert 'http-equiv="refresh"' not in html


def test_status_json_reports_the_prediction(client, collector):
    version = ModelVersionFactory(version=4)
    coin = CoinFactory(owner=collector, status=Coin.Status.PREDICTED, verified_year=1880)
    PredictionFactory(coin=coin, year=1874, interval_low=1869, interval_high=1879, model_version=version)
    client.force_login(collector)

    response = client.get(reverse("coin-status", kwargs={"coin_id": coin.id}))

    assert response["Cache-Control"] == "no-store"
    data = response.json()
    year_html, notes_html = data.pop("year_html"), data.pop("notes_html")
    assert data == {
        "status": "predicted",
        "status_detail": "",
        "verdict": "verified",
        "verdict_label": "Verified",
        "heading": "Verified year",
        "year": 1874,
        "low": 1869,
        "high": 1879,
        "version": 4,
        "model": "coin-year v4",
        "verified_year": 1880,
        "rejected": "",
    }
    assert '<span class="year__value">1874</span>' in year_html and "likely 1869–1879" in year_html
    assert notes_html.strip() == ""


def test_status_json_of_a_pending_coin_has_no_year(client, collector, coin):
    client.force_login(collector)

    data = client.get(reverse("coin-status", kwargs={"coin_id": coin.id})).json()

    assert data["status"] == "pending"
    assert data["year"] is data["low"] is data["high"] is data["version"] is data["verified_year"] is None


def test_collector_deletes_own_coin_and_its_photos(
    client, collector, coin, settings, django_capture_on_commit_callbacks
):
    client.force_login(collector)
    assert len(files_under(settings.MEDIA_ROOT)) == 2

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("coin-delete", kwargs={"coin_id": coin.id}))

    assert response.status_code == 302
    assert response["Location"] == reverse("coin-list")
    assert not Coin.objects.exists()
    assert files_under(settings.MEDIA_ROOT) == []


def test_delete_needs_a_post(client, collector, coin):
    client.force_login(collector)

    assert client.get(reverse("coin-delete", kwargs={"coin_id": coin.id})).status_code == 405
    assert Coin.objects.filter(pk=coin.pk).exists()
