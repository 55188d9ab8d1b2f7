"""A curator works the review queue in a real browser (Debian's Chromium via Playwright), with the keyboard only."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from predictions.models import Coin, Correction
from tests.factories import CoinFactory, ModelVersionFactory, PredictionFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
PASSWORD = "correct-horse-battery"


@pytest.fixture
def page(browser):
    """A fresh Chromium page (large enough to see both photos side by side); a missing Chromium fails the test."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def queued_coin(*, year: int, minutes_ago: int, version) -> Coin:
    coin = CoinFactory(status=Coin.Status.PREDICTED)
    Coin.objects.filter(pk=coin.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    PredictionFactory(coin=coin, year=year, interval_low=year - 6, interval_high=year + 6, model_version=version)
    return coin


def on_review_of(coin: Coin):
    return re.compile(rf"/admin/predictions/coin/{coin.pk}/review/")


def test_curator_reviews_the_queue_with_the_keyboard_only(live_server, transactional_db, page):
    # given a curator and four coins in the queue (oldest first)
    curator = UserFactory(username="curator1", roles=["curator"], is_staff=True)
    version = ModelVersionFactory(version=2)
    confirm, correct, skip, unusable = (
        queued_coin(year=year, minutes_ago=minutes, version=version)
        for year, minutes in [(1874, 40), (1921, 30), (1802, 20), (1955, 10)]
    )
    ARTIFACTS.mkdir(exist_ok=True)

    # when the curator signs in and starts reviewing, all with the keyboard
    page.goto(f"{live_server.url}/admin/login/?next=/admin/predictions/coin/")
    page.keyboard.type("curator1")  # the username field has the focus
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/admin/predictions/coin/")
    page.keyboard.press("r")  # "Start reviewing"
    page.wait_for_url(on_review_of(confirm))
    assert page.evaluate("document.activeElement.name") == "year"
    assert page.input_value("input[name=year]") == ""
    page.wait_for_function(
        "document.getElementById('review-front').complete && document.getElementById('review-back').complete"
    )
    page.screenshot(path=str(ARTIFACTS / "review-page.png"), full_page=True)

    #   1. Enter with the empty field confirms the predicted year, and the next coin opens
    page.keyboard.press("Enter")
    page.wait_for_url(on_review_of(correct))
    assert "confirmed 1874" in page.inner_text("ul.messagelist")

    #   2. F zooms the front, Escape closes the zoom (without skipping), digits + Enter correct
    page.keyboard.press("f")
    assert page.is_visible("#review-lightbox")
    page.screenshot(path=str(ARTIFACTS / "review-zoom.png"))
    page.keyboard.press("Escape")
    assert page.is_hidden("#review-lightbox") and on_review_of(correct).search(page.url)
    page.keyboard.type("1x903")  # the letter is refused by the year field
    assert page.input_value("input[name=year]") == "1903"
    page.keyboard.press("Enter")
    page.wait_for_url(on_review_of(skip))
    assert "corrected 1921 → 1903" in page.inner_text("ul.messagelist")

    #   3. Escape skips this coin
    page.keyboard.press("Escape")
    page.wait_for_url(on_review_of(unusable))

    #   4. U marks the photo unusable, Enter saves; the queue is done and the list opens
    page.keyboard.press("u")
    assert page.is_checked("input[name=exclude][type=checkbox]")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"^{re.escape(live_server.url)}/admin/predictions/coin/(\?.*)?$"))
    page.screenshot(path=str(ARTIFACTS / "review-queue-after.png"), full_page=True)

    # then exactly three decisions were written, by the curator, and the skipped coin is still in the queue
    decisions = {c.coin_id: (c.curator_id, c.old_year, c.new_year, c.excluded) for c in Correction.objects.all()}
    assert decisions == {
        confirm.pk: (curator.pk, 1874, 1874, False),
        correct.pk: (curator.pk, 1921, 1903, False),
        unusable.pk: (curator.pk, 1955, None, True),
    }
    states = {c.pk: (c.verified_year, c.excluded_from_training) for c in Coin.objects.all()}
    assert states == {
        confirm.pk: (1874, False),
        correct.pk: (1903, False),
        skip.pk: (None, False),
        unusable.pk: (None, True),
    }
    assert page.locator(f"#result_list a[href*='/coin/{skip.pk}/']").count() >= 1
