"""Curators work the review queue in a real browser (Debian's Chromium via Playwright): with the keyboard only, two
at once (never on the same coin), undoing a decision, and typing into the year field without firing hotkeys."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from predictions import services
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


REVIEWING = re.compile(r"/admin/predictions/coin/(\d+)/review/")


def sign_in(page, live_server, username: str) -> None:
    """Sign in to the admin's index (the queue's thumbnails are made on their first request: a burst of writes)."""
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{live_server.url}/admin/")


def coin_under_review(page) -> int | None:
    """The id of the coin the page reviews, or None when it is not a review page (the queue is done)."""
    match = REVIEWING.search(page.url)
    return int(match.group(1)) if match else None


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
    assert page.evaluate("document.activeElement === document.body")  # hotkeys act on the page, not in a field
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
    page.keyboard.type("1x903")  # the first digit moves into the year field, which refuses the letter
    assert page.input_value("input[name=year]") == "1903"
    assert page.is_hidden("#review-lightbox")
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


def test_two_curators_working_the_queue_at_once_never_get_the_same_coin(live_server, transactional_db, browser):
    # given eight coins in the queue and two curators, each in a browser of their own
    version = ModelVersionFactory(version=2)
    coins = [queued_coin(year=1800 + 10 * i, minutes_ago=60 - i, version=version) for i in range(8)]
    curators = [UserFactory(username=name, roles=["curator"], is_staff=True) for name in ("alice", "bob")]
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in curators]
    try:
        pages = [context.new_page() for context in contexts]
        for page, curator in zip(pages, curators, strict=True):
            page.set_default_timeout(20_000)
            sign_in(page, live_server, curator.username)

        # when both start reviewing, then confirm coin after coin, each holding a coin while the other one moves on
        # (on PostgreSQL their requests are sent at the same moment; the test pass's in-memory SQLite, shared by the
        # live server's threads, answers overlapping writes with "table is locked", so there they take turns)
        together = connection.vendor == "postgresql"

        def act(page, action) -> None:
            old = page.url
            action()
            if not together:
                page.wait_for_url(lambda url: url != old)
                page.wait_for_load_state("load")

        start = f"{live_server.url}/admin/predictions/coin/review/"
        for page in pages:
            act(page, lambda page=page: page.evaluate("url => window.location.assign(url)", start))
        for page in pages:
            page.wait_for_url(REVIEWING)
        seen: list[list[int]] = [[], []]
        while True:
            for page in pages:
                page.wait_for_load_state("load")
            current = [coin_under_review(page) for page in pages]
            assert current[0] is None or current[0] != current[1], f"both curators got coin #{current[0]}"
            for index, coin_id in enumerate(current):
                if coin_id is not None:
                    seen[index].append(coin_id)
            if current == [None, None]:
                break
            for page, coin_id in zip(pages, current, strict=True):
                if coin_id is not None:
                    act(page, lambda page=page: page.keyboard.press("Enter"))  # confirm; the next free coin opens
            for page, coin_id in zip(pages, current, strict=True):
                if coin_id is not None:
                    page.wait_for_url(lambda url, old=coin_id: f"/coin/{old}/review/" not in url)
        pages[0].screenshot(path=str(ARTIFACTS / "review-two-curators.png"), full_page=True)
    finally:
        for context in contexts:
            context.close()

    # then nobody saw a coin the other one had, each coin was decided once, by the curator who had it
    print(f"\nalice reviewed {seen[0]}, bob reviewed {seen[1]}")
    assert set(seen[0]).isdisjoint(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(coin.pk for coin in coins)
    assert seen[0] and seen[1]
    deciders = dict(Correction.objects.values_list("coin_id", "curator__username"))
    assert deciders == {**{pk: "alice" for pk in seen[0]}, **{pk: "bob" for pk in seen[1]}}


def test_undo_restores_the_previous_year_and_the_audit_shows_both_decisions(live_server, transactional_db, page):
    # given a coin another curator verified as 1880 an hour ago, and one more coin in the queue
    version = ModelVersionFactory(version=2)
    coin = queued_coin(year=1874, minutes_ago=90, version=version)
    services.coin_correct(coin=coin, curator=UserFactory(username="earlier", roles=["curator"]), year=1880)
    Correction.objects.filter(coin=coin).update(created_at=timezone.now() - timedelta(hours=1))
    following = queued_coin(year=1921, minutes_ago=30, version=version)
    UserFactory(username="curator1", roles=["curator"], is_staff=True)
    sign_in(page, live_server, "curator1")

    # when the curator corrects it to 1903 from its review page, the next coin opens, and they press Z (undo)
    page.goto(f"{live_server.url}/admin/predictions/coin/{coin.pk}/review/")
    page.keyboard.type("1903")
    page.keyboard.press("Enter")
    page.wait_for_url(on_review_of(following))
    assert "corrected 1880 → 1903" in page.inner_text("ul.messagelist")
    assert Coin.objects.get(pk=coin.pk).verified_year == 1903
    page.keyboard.press("z")
    page.wait_for_url(on_review_of(coin))

    # then the coin's verified year is 1880 again, and the audit keeps the decision and its undo
    assert "Undone: coin" in page.inner_text("ul.messagelist")
    coin.refresh_from_db()
    assert coin.verified_year == 1880
    rows = list(Correction.objects.filter(coin=coin).order_by("pk").values_list("old_year", "new_year", "undoes"))
    decision_pk = Correction.objects.filter(coin=coin).order_by("pk")[1].pk
    assert rows == [(1874, 1880, None), (1880, 1903, None), (1903, 1880, decision_pk)]
    audit_on_desk = page.inner_text("#review-audit")
    assert "undo" in audit_on_desk and "1903" in audit_on_desk
    page.goto(f"{live_server.url}/admin/predictions/correction/?q={coin.pk}")
    audit = page.inner_text("#result_list")
    page.screenshot(path=str(ARTIFACTS / "review-audit-undo.png"), full_page=True)
    assert "decision (undone)" in audit and f"undo of decision #{decision_pk}" in audit
    assert audit.count("curator1") == 2 and "earlier" in audit


def test_hotkeys_typed_inside_the_year_field_do_nothing_else(live_server, transactional_db, page):
    # given a curator on a coin's review page, with an earlier decision of theirs they could undo
    version = ModelVersionFactory(version=2)
    decided = queued_coin(year=1850, minutes_ago=50, version=version)
    coin = queued_coin(year=1874, minutes_ago=40, version=version)
    curator = UserFactory(username="curator1", roles=["curator"], is_staff=True)
    services.coin_correct(coin=decided, curator=curator, year=1850)
    sign_in(page, live_server, "curator1")
    page.goto(f"{live_server.url}/admin/predictions/coin/{coin.pk}/review/")
    url = page.url

    # when they click into the year field and type every hotkey there, with digits between
    page.click("input[name=year]")
    page.keyboard.type("1b9fu0z3r")

    # then only the digits landed: no zoom, no "unusable", no undo, no navigation
    assert page.input_value("input[name=year]") == "1903"
    assert page.is_hidden("#review-lightbox")
    assert not page.is_checked("input[name=exclude][type=checkbox]")
    page.wait_for_timeout(300)  # a navigation (undo, skip) would have started by now
    assert page.url == url and Correction.objects.count() == 1

    # and Escape in the field only leaves it (no skip), after which the hotkeys work on the page again
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    assert page.url == url and page.evaluate("document.activeElement === document.body")
    page.keyboard.press("b")
    assert page.is_visible("#review-lightbox")
    page.keyboard.press("Enter")  # closes the zoom, decides nothing
    assert page.is_hidden("#review-lightbox") and Correction.objects.count() == 1

    # and Enter typed in the field saves the typed year (it does not close a zoom that a letter opened)
    page.click("input[name=year]")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda new: new != url)
    coin.refresh_from_db()
    assert coin.verified_year == 1903
