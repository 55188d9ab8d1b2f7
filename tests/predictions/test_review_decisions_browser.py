"""The review desk's verdicts in a real browser (Debian's Chromium via Playwright, 1280 px wide): a coin the model
rejected shows its reason and no year, a year for it needs the override, "not a coin" is a decision of its own (N),
the alternatives show with their probabilities, and coins with the same photos are linked and decided together."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from predictions.models import Coin, Correction
from tests.factories import CoinFactory, ModelVersionFactory, PredictionFactory, UserFactory
from tests.predictions.test_review_browser import ARTIFACTS, on_review_of, sign_in
from training.ml import negatives, synthetic

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def photo_coin(front: bytes, back: bytes, *, owner=None, minutes_ago: int) -> Coin:
    """A coin awaiting review with these photos (hashed as uploads are)."""
    coin = CoinFactory(
        status=Coin.Status.PREDICTED,
        front_image=ContentFile(front, name="front.jpg"),
        back_image=ContentFile(back, name="back.jpg"),
        front_sha256=hashlib.sha256(front).hexdigest(),
        back_sha256=hashlib.sha256(back).hexdigest(),
        **({"owner": owner} if owner else {}),
    )
    Coin.objects.filter(pk=coin.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return coin


def rejected_prediction(coin: Coin, version, *, reason: str = "not_a_coin") -> None:
    """What the date reader stores for a rejected photo: its best guess (never shown) and a wide interval."""
    PredictionFactory(
        coin=coin,
        year=1999,
        interval_low=1933,
        interval_high=1999,
        model_version=version,
        rejected=reason,
        coin_score=0.04,
        uncertainty=4.2,
    )


def test_a_rejected_coin_shows_its_reason_and_a_year_for_it_needs_the_override(live_server, transactional_db, page):
    # given a snapshot the model judged not a coin, and a coin it read (with alternatives, one of them ~0 %)
    version = ModelVersionFactory(version=2)
    snapshot = photo_coin(
        negatives.generate_negative_jpeg(11, size=320), negatives.generate_negative_jpeg(12, size=320), minutes_ago=30
    )
    rejected_prediction(snapshot, version)
    ((front, back, year),) = synthetic.iter_coins(1, seed=3, size=320)
    read = photo_coin(front, back, minutes_ago=20)
    PredictionFactory(
        coin=read,
        year=1874,
        interval_low=1872,
        interval_high=1877,
        model_version=version,
        uncertainty=1.1,
        alternatives=[
            {"year": 1874, "p": 0.81},
            {"year": 1879, "p": 0.07},
            {"year": 1871, "p": 0.04},
            {"year": 1986, "p": 0.001},
        ],
    )
    UserFactory(username="curator1", roles=["curator"], is_staff=True)
    sign_in(page, live_server, "curator1")

    # when the curator opens the queue, then the snapshot shows its verdict, no year, after the coin the model read
    page.goto(f"{live_server.url}/admin/predictions/coin/")
    page.screenshot(path=str(ARTIFACTS / "review-queue-rejected.png"), full_page=True)
    rows = [re.sub(r"\s+", " ", row) for row in page.locator("#result_list tbody tr").all_inner_texts()]
    assert [row.split()[0] for row in rows] == [f"#{read.pk}", f"#{snapshot.pk}"]
    assert "not a coin" in rows[1] and "1999" not in rows[1] and "1933" not in rows[1]
    # and every column fits at 1280 px (the State column used to be scrolled out of sight)
    assert page.evaluate(
        "document.querySelector('#changelist .results').scrollWidth <= "
        "document.querySelector('#changelist .results').clientWidth + 1"
    )

    # when the curator opens the snapshot on the desk
    page.goto(f"{live_server.url}/admin/predictions/coin/{snapshot.pk}/review/")
    page.wait_for_function("document.getElementById('review-front').complete")
    page.screenshot(path=str(ARTIFACTS / "review-rejected.png"), full_page=True)

    # then the desk shows the model's verdict and its reason, and no year or interval
    panel = page.inner_text(".review-prediction")
    assert "Not a coin" in panel and "does not look like a coin" in panel
    assert (
        "1999" not in panel
        and "1933" not in panel
        and "interval" not in panel.lower().replace("no year, no interval", "")
    )
    assert page.locator("#review-predicted").count() == 0

    # when they press Enter, then nothing is decided: there is no year to confirm
    page.keyboard.press("Enter")
    page.wait_for_load_state("load")
    assert "mark it not a coin" in page.inner_text(".review-error")
    assert not Correction.objects.exists()

    # when they type a year without the override, then it is refused, on the override checkbox
    page.keyboard.type("1900")
    page.keyboard.press("Enter")
    page.wait_for_load_state("load")
    assert "give it a year anyway" in page.inner_text("#review-override-error")
    assert not Correction.objects.exists()

    # when they tick the override and save, then the year is saved, the message and the audit say "override"
    page.fill("input[name=year]", "1900")
    page.check("input[name=override]")
    page.click("#review-save")
    # (the rejected coin came last in the queue, after the coin the model read: the list opens)
    page.wait_for_url(re.compile(r"/admin/predictions/coin/(\?.*)?$"))
    assert f"Coin #{snapshot.pk}: corrected (no year) → 1900 (override)." in page.inner_text("ul.messagelist")
    correction = Correction.objects.get(coin=snapshot)
    assert (correction.new_year, correction.override) == (1900, True)

    # and the coin the model read shows its alternatives with probabilities, no 0 % row
    page.goto(f"{live_server.url}/admin/predictions/coin/{read.pk}/review/")
    page.wait_for_function("document.getElementById('review-front').complete")
    page.screenshot(path=str(ARTIFACTS / "review-alternatives.png"), full_page=True)
    rows = page.locator("#review-alternatives tbody tr").all_inner_texts()
    assert [re.sub(r"\s+", " ", row).strip() for row in rows] == ["1874 81 %", "1879 7 %", "1871 4 %"]


def test_not_a_coin_is_a_decision_and_applies_to_the_same_photos_of_another_collector(
    live_server, transactional_db, page
):
    # given the same snapshot uploaded by two collectors, both rejected by the model
    version = ModelVersionFactory(version=2)
    front, back = negatives.generate_negative_jpeg(21, size=320), negatives.generate_negative_jpeg(22, size=320)
    first = photo_coin(front, back, owner=UserFactory(username="anna"), minutes_ago=30)
    twin = photo_coin(front, back, owner=UserFactory(username="bruno"), minutes_ago=20)
    for coin in (first, twin):
        rejected_prediction(coin, version)
    UserFactory(username="curator1", roles=["curator"], is_staff=True)
    sign_in(page, live_server, "curator1")

    # when the curator opens the first one
    page.goto(f"{live_server.url}/admin/predictions/coin/{first.pk}/review/")

    # then the desk links the other collector's copy
    same = page.inner_text("#review-same")
    assert f"Same photos as coin #{twin.pk} by another collector (bruno)" in re.sub(r"\s+", " ", same)
    page.screenshot(path=str(ARTIFACTS / "review-same-photos.png"), full_page=True)
    page.click(f"#review-same a:has-text('coin #{twin.pk}')")
    page.wait_for_url(on_review_of(twin))
    assert f"coin #{first.pk}" in page.inner_text("#review-same")
    page.go_back()
    page.wait_for_url(on_review_of(first))

    # when they press N (not a coin), tick "apply to the same photos", and press Enter
    page.keyboard.press("n")
    assert page.is_checked("input[name=not_a_coin]")
    assert page.inner_text("#review-save").strip() == "Mark not a coin"
    page.check("input[name=same_photos]")
    page.locator("body").click(position={"x": 5, "y": 5})  # the focus back on the page, where Enter saves
    page.keyboard.press("Enter")
    page.wait_for_load_state("load")

    # then both coins are marked not a coin, each with its own audit row, and the message says so
    message = page.inner_text("ul.messagelist")
    assert f"Coin #{first.pk}: marked not a coin." in message and f"#{twin.pk}" in message
    rows = {c.coin_id: (c.decision, c.new_year, c.applied_from_id) for c in Correction.objects.all()}
    original = Correction.objects.get(coin=first).pk
    assert rows == {first.pk: ("not_a_coin", None, None), twin.pk: ("not_a_coin", None, original)}
    assert list(Coin.objects.filter(not_a_coin=True).order_by("pk").values_list("pk", flat=True)) == [
        first.pk,
        twin.pk,
    ]
    page.goto(f"{live_server.url}/admin/predictions/coin/?state=not_a_coin")
    page.screenshot(path=str(ARTIFACTS / "review-queue-not-a-coin.png"), full_page=True)
    assert page.locator("#result_list tbody tr").count() == 2
