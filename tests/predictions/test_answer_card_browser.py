"""The collector's answer card and upload in Chromium: the verified year is the headline, alternatives come with their
probabilities, a non-coin gets a plain card with a retake, a failed upload keeps the good photo, and the same pair
uploaded again opens the coin that already has it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from predictions import services
from predictions.models import Coin
from tests.factories import CoinFactory, PredictionFactory, UserFactory
from tests.training.ml.test_images import png_with_header_size
from training.ml.synthetic import iter_coins

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "correct-horse-battery"
TIMEOUT_MS = 60_000


def signed_in_page(browser, base: str, username: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(base + reverse("login"))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(base + reverse("coin-list"))
    return context, page


@pytest.fixture
def photos(tmp_path) -> dict[str, Path]:
    front, back, _year = next(iter_coins(1, seed=31))
    paths = {"front": tmp_path / "front.jpg", "back": tmp_path / "back.jpg", "broken": tmp_path / "broken.jpg"}
    paths["front"].write_bytes(front)
    paths["back"].write_bytes(back)
    paths["broken"].write_bytes(b"this is a text file, not a photo\n" * 20)
    paths["huge"] = tmp_path / "huge.png"
    paths["huge"].write_bytes(png_with_header_size(16000, 16000))
    return paths


def test_answer_card_verified_headline_alternatives_and_not_a_coin(
    browser, live_server, transactional_db, django_db_serialized_rollback
):
    base = live_server.url
    collector = UserFactory(username="dora", roles=["collector"])
    curator = UserFactory(username="curt", roles=["curator"])
    corrected = PredictionFactory(
        coin=CoinFactory(owner=collector),
        year=1831,
        interval_low=1830,
        interval_high=1833,
        alternatives=[{"year": 1831, "p": 0.52}, {"year": 1838, "p": 0.21}, {"year": 1881, "p": 0.09}],
    ).coin
    services.coin_correct(coin=corrected, curator=curator, year=1949)
    open_coin = PredictionFactory(
        coin=CoinFactory(owner=collector),
        year=1874,
        interval_low=1873,
        interval_high=1876,
        interval_level=0.95,
        alternatives=[{"year": 1874, "p": 0.71}, {"year": 1876, "p": 0.12}, {"year": 1847, "p": 0.05}],
    ).coin
    cat = PredictionFactory(coin=CoinFactory(owner=collector), rejected="not_a_coin").coin
    context, page = signed_in_page(browser, base, "dora")

    # a curator's correction is the headline; the model's answer is history below it
    page.goto(base + reverse("coin-detail", kwargs={"coin_id": corrected.id}))
    assert page.text_content(".result__label") == "Verified year"
    assert page.inner_text("[data-verified-headline] .year__value") == "1949"
    assert "The model said: 1831" in page.inner_text(".model-said")
    page.screenshot(path=ARTIFACTS / "card-verified.png", full_page=True)

    # an open coin: the year, its interval, and the three most likely years with their probabilities
    page.goto(base + reverse("coin-detail", kwargs={"coin_id": open_coin.id}))
    assert page.inner_text("[data-year]").strip() == "1874, likely 1873–1876 (95 %)"
    assert page.inner_text("[data-year-notes]").strip() == "How sure: 1874 71 % · 1876 12 % · 1847 5 %"

    # a photo that is not a coin: no year, what to do, and a one-click retake
    page.goto(base + reverse("coin-detail", kwargs={"coin_id": cat.id}))
    assert page.inner_text("[data-year]").strip() == "Not a coin"
    assert "does not look like a coin" in page.inner_text("[data-year-notes]")
    page.click("[data-retake]")
    page.wait_for_url(base + reverse("coin-upload"))
    page.screenshot(path=ARTIFACTS / "card-not-a-coin-retake.png", full_page=True)

    # the list shows the verified year too
    page.goto(base + reverse("coin-list"))
    assert "1949" in page.inner_text("body") and "verified" in page.inner_text("body")
    context.close()


def test_a_failed_upload_keeps_the_good_photo_and_the_same_pair_opens_the_existing_coin(
    browser, live_server, transactional_db, django_db_serialized_rollback, no_model, photos
):
    base = live_server.url
    UserFactory(username="emil", roles=["collector"])
    context, page = signed_in_page(browser, base, "emil")
    page.goto(base + reverse("coin-upload"))

    # a good front and a broken back (it passes the browser's checks, the server refuses it)
    page.set_input_files("#id_front_image", str(photos["front"]))
    page.set_input_files("#id_back_image", str(photos["broken"]))
    page.fill("#id_notes", "from grandma's box")
    page.click("[data-submit]")
    page.wait_for_selector(".dropzone--error [data-error]:not(:empty)")

    # only the back is marked, in plain words, and the front is still chosen
    assert "Back photo: the file is not an image" in page.inner_text(".dropzone--error [data-error]")
    assert page.eval_on_selector("#id_front_image", "input => input.files.length") == 1
    assert page.eval_on_selector("#id_front_image", "input => input.files[0].name") == "front.jpg"
    assert page.locator(".dropzone--error").count() == 1
    assert page.url == base + reverse("coin-upload") and Coin.objects.count() == 0
    page.screenshot(path=ARTIFACTS / "upload-kept-good-photo.png", full_page=True)

    # replacing only the back sends the coin, with its notes
    page.set_input_files("#id_back_image", str(photos["back"]))
    page.click("[data-submit]")
    page.wait_for_url(re.compile(re.escape(base) + r"/coins/\d+/$"))
    coin = Coin.objects.get()
    assert coin.notes == "from grandma's box"

    # the same two photos again open that coin instead of making a second one
    page.goto(base + reverse("coin-upload"))
    page.set_input_files("#id_front_image", str(photos["front"]))
    page.set_input_files("#id_back_image", str(photos["back"]))
    page.click("[data-submit]")
    page.wait_for_url(base + reverse("coin-detail", kwargs={"coin_id": coin.id}))
    assert "You uploaded these two photos before" in page.inner_text("body")
    assert Coin.objects.count() == 1

    # a photo over the pixel limit is refused in the browser, in the server's terms, before anything is sent
    page.goto(base + reverse("coin-upload"))
    page.set_input_files("#id_front_image", str(photos["huge"]))
    page.wait_for_selector(".dropzone--error [data-error]:not(:empty)")
    assert page.inner_text(".dropzone--error [data-error]") == (
        "Front photo: “huge.png” is 16000×16000 = 256.0 megapixels; the limit is 50.0 megapixels. Send a smaller photo."
    )
    context.close()


def test_a_rejected_photo_reads_as_one_on_the_card_and_my_coins_filters_it(
    browser, live_server, transactional_db, django_db_serialized_rollback
):
    """Issue 21: no "Predicted" badge, no year, no model error for a photo that is not a coin; My coins counts it
    apart and filters it, at desktop and phone widths."""
    base = live_server.url
    collector = UserFactory(username="fern", roles=["collector"])
    dated = PredictionFactory(
        coin=CoinFactory(owner=collector, status=Coin.Status.PREDICTED), year=1874, interval_level=0.95
    ).coin
    cat = PredictionFactory(
        coin=CoinFactory(owner=collector, status=Coin.Status.PREDICTED),
        year=1999,
        interval_low=1933,
        interval_high=1999,
        rejected="not_a_coin",
    ).coin
    PredictionFactory(coin=CoinFactory(owner=collector, status=Coin.Status.PREDICTED), year=1950, rejected="unreadable")
    context, page = signed_in_page(browser, base, "fern")

    for width, name in ((1280, "desktop"), (390, "phone")):
        page.set_viewport_size({"width": width, "height": 900})

        # the card of the cat: what was found, what to do, no year and no model error
        page.goto(base + reverse("coin-detail", kwargs={"coin_id": cat.id}))
        card = page.inner_text(".result")
        assert page.inner_text("[data-status-badge]") == "Not a coin"
        assert page.inner_text("[data-heading]").strip().lower() == "no year given"
        assert page.inner_text("[data-year]").strip() == "Not a coin"
        assert "does not look like a coin" in card and page.is_visible("[data-retake]")
        assert "Predicted" not in card and "MAE" not in card and "1999" not in card and "1933" not in card
        page.screenshot(path=ARTIFACTS / f"card-rejected-{name}.png", full_page=True)

        # My coins: two coins and one upload that is not a coin; the filter shows the non-coin alone
        page.goto(base + reverse("coin-list"))
        assert page.inner_text("[data-coin-count]") == "2 coins, and 1 upload that is not a coin"
        assert page.locator(".badge--predicted").count() == 0
        page.screenshot(path=ARTIFACTS / f"my-coins-verdicts-{name}.png", full_page=True)
        page.click("[data-verdict-tabs] [data-show=not_a_coin]")
        page.wait_for_url(base + reverse("coin-list") + "?show=not_a_coin")
        assert page.locator(".coin-card").count() == 1
        assert page.inner_text(".coin-card [data-verdict]") == "Not a coin"
        page.select_option("#id_show", "dated")
        page.click(".filters button[type=submit]")
        page.wait_for_url(re.compile(r".*show=dated.*"))
        assert page.locator(".coin-card").count() == 1
        assert f"/coins/{dated.id}/" in page.get_attribute(".coin-card a", "href")
        page.screenshot(path=ARTIFACTS / f"my-coins-dated-{name}.png", full_page=True)
    context.close()


def test_a_waiting_card_that_turns_out_not_a_coin_updates_to_say_so(
    browser, live_server, transactional_db, django_db_serialized_rollback
):
    base = live_server.url
    collector = UserFactory(username="gil", roles=["collector"])
    coin = CoinFactory(owner=collector)  # pending
    context, page = signed_in_page(browser, base, "gil")
    page.goto(base + reverse("coin-detail", kwargs={"coin_id": coin.id}))
    assert page.inner_text("[data-status-badge]") == "Waiting"

    # when the model rejects the photos while the page is open (it polls status.json)
    PredictionFactory(coin=coin, year=1999, interval_low=1933, interval_high=1999, rejected="not_a_coin")
    Coin.objects.filter(pk=coin.pk).update(status=Coin.Status.PREDICTED)

    # then the card says what was found, with no year and no "Predicted"
    page.wait_for_selector("[data-status-badge].badge--not_a_coin")
    assert page.inner_text("[data-status-badge]") == "Not a coin"
    assert page.inner_text("[data-heading]").strip().lower() == "no year given"
    assert page.inner_text("[data-year]").strip() == "Not a coin"
    assert page.inner_text("[data-model]").startswith("Checked by")
    card = page.inner_text(".result")
    assert "1999" not in card and "Predicted" not in card and page.is_visible("[data-retake]")
    context.close()
