"""The collector's journey in a real browser: Playwright driving Debian's headless Chromium against a live server.

Screenshots land in test-artifacts/ (repo root, git-ignored) so CI can keep them. Chromium comes from `make test`
(`make browser-deps`); it is never downloaded by Playwright. A missing browser fails the test instead of skipping it,
so the journey is really checked wherever the suite runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from predictions.models import Coin
from training.ml.synthetic import iter_coins

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "a-long-coin-phrase-42"
YEAR_IN_WORDS = re.compile(r"^\d{4}(, likely \d{4}–\d{4}( \(\d{1,3} %\))?)?$")  # "1874, likely 1869–1879 (95 %)"
TIMEOUT_MS = 60_000  # the first prediction loads the model inside the upload request (Celery eager, on commit)


@pytest.fixture
def coin_photos(tmp_path) -> tuple[Path, Path]:
    """One generated coin (front and back JPEG) written where a user would pick it from."""
    front, back, _year = next(iter_coins(1, seed=20))
    front_path, back_path = tmp_path / "front.jpg", tmp_path / "back.jpg"
    front_path.write_bytes(front)
    back_path.write_bytes(back)
    return front_path, back_path


def sign_up(page, base_url: str, username: str) -> None:
    page.goto(base_url + reverse("signup"))
    page.fill("#id_username", username)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(base_url + reverse("coin-upload"))


def upload(page, base_url: str, front: Path, back: Path) -> int:
    page.set_input_files("#id_front_image", str(front))
    page.set_input_files("#id_back_image", str(back))
    page.click("[data-submit]")
    page.wait_for_url(re.compile(re.escape(base_url) + r"/coins/\d+/$"), timeout=TIMEOUT_MS)
    return int(page.url.rstrip("/").rsplit("/", 1)[-1])


def test_collector_signs_up_uploads_and_sees_the_year_and_others_get_404(
    browser, live_server, transactional_db, django_db_serialized_rollback, production_model, coin_photos
):
    base = live_server.url
    front, back = coin_photos

    # given a new collector, signed up through the page
    alice = browser.new_context(viewport={"width": 1280, "height": 900})
    page = alice.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_up(page, base, "alice")
    assert "Date a coin" in page.inner_text("h1")

    # when she uploads a front and a back photo
    page.set_input_files("#id_front_image", str(front))
    page.set_input_files("#id_back_image", str(back))
    page.wait_for_selector("[data-dropzone] [data-preview]:not([hidden])")
    page.screenshot(path=ARTIFACTS / "browser-upload-filled.png", full_page=True)
    page.click("[data-submit]")
    page.wait_for_url(re.compile(re.escape(base) + r"/coins/\d+/$"), timeout=TIMEOUT_MS)
    coin_id = int(page.url.rstrip("/").rsplit("/", 1)[-1])

    # then her coin page shows a year in words and the model that made it (the page polls while it is pending)
    page.wait_for_selector("[data-year] .year__value", timeout=TIMEOUT_MS)
    year_text = page.inner_text("[data-year]").strip()
    assert YEAR_IN_WORDS.match(year_text), year_text
    assert "Predicted by" in page.inner_text("[data-model]")
    assert page.inner_text("[data-status-badge]") == "Dated"
    assert page.eval_on_selector_all(".photo img", "imgs => imgs.map(i => i.naturalWidth > 0)") == [True, True]
    page.screenshot(path=ARTIFACTS / "browser-coin-page.png", full_page=True)
    coin = Coin.objects.get(pk=coin_id)
    assert coin.owner.username == "alice"
    assert coin.predictions.get().year == int(year_text[:4])

    # and on a phone the same page reads well too
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone.add_cookies(alice.cookies())
    phone_page = phone.new_page()
    phone_page.goto(page.url)
    phone_page.screenshot(path=ARTIFACTS / "browser-coin-page-phone.png", full_page=True)
    phone.close()

    # when a second collector opens that coin's page or its photo
    bob = browser.new_context(viewport={"width": 1280, "height": 900})
    other = bob.new_page()
    sign_up(other, base, "bob")
    response = other.goto(base + reverse("coin-detail", kwargs={"coin_id": coin_id}))

    # then both are 404
    assert response.status == 404
    assert "Not found" in other.inner_text("h1")
    other.screenshot(path=ARTIFACTS / "browser-other-collector-404.png", full_page=True)
    assert other.goto(base + reverse("coin-image", kwargs={"coin_id": coin_id, "side": "front"})).status == 404
    bob.close()
    alice.close()


def test_upload_checks_photos_in_the_browser_and_the_coin_waits_while_no_model_is_in_production(
    browser, live_server, transactional_db, django_db_serialized_rollback, no_model, coin_photos, tmp_path
):
    base = live_server.url
    front, back = coin_photos
    gif = tmp_path / "coin.gif"
    gif.write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_up(page, base, "carol")

    # a photo of the wrong type is refused before anything is sent, with the side and the problem named
    page.set_input_files("#id_front_image", str(front))
    page.set_input_files("#id_back_image", str(gif))
    page.click("[data-submit]")
    assert "Back photo: “coin.gif” is a GIF file" in page.inner_text(".dropzone--error [data-error]")
    assert page.url == base + reverse("coin-upload")
    page.screenshot(path=ARTIFACTS / "browser-upload-refused-phone.png", full_page=True)
    assert Coin.objects.count() == 0

    # good photos are accepted; with no model in production the coin waits, and the page says why
    coin_id = upload(page, base, front, back)
    assert page.inner_text("[data-status-badge]") == "Waiting"
    assert "Looking at your photos" in page.inner_text("[data-coin-status]")
    assert "No model in production yet" in page.inner_text("footer")
    page.screenshot(path=ARTIFACTS / "browser-coin-pending-phone.png", full_page=True)
    coin = Coin.objects.get(pk=coin_id)
    assert coin.status == Coin.Status.PENDING
    assert not coin.predictions.exists()
    context.close()
