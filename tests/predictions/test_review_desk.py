"""The review desk's rules: claims (and their expiry), undo of one's own last decisions, the progress line, and bulk
confirm only for confident predictions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from predictions import review, selectors, services
from predictions.models import Coin, Correction
from tests.concurrency import at_once
from tests.factories import CoinFactory, CorrectionFactory, ModelVersionFactory, PredictionFactory, UserFactory

pytestmark = pytest.mark.django_db

START = reverse("admin:predictions_coin_review_start")


def review_url(coin: Coin) -> str:
    return reverse("admin:predictions_coin_review", kwargs={"coin_id": coin.pk})


def undo_url(correction: Correction) -> str:
    return reverse("admin:predictions_coin_review_undo", kwargs={"correction_id": correction.pk})


@pytest.fixture
def other_curator(db):
    return UserFactory(username="curator2", roles=["curator"], is_staff=True)


@pytest.fixture
def queued(db):
    """A coin awaiting review with a prediction of `year` (interval of `width` years), `age_min` minutes old."""
    version = ModelVersionFactory(version=3)

    def make(year: int = 1874, width: int = 10, age_min: int = 0, rejected: str = "") -> Coin:
        coin = CoinFactory(status=Coin.Status.PREDICTED)
        Coin.objects.filter(pk=coin.pk).update(created_at=timezone.now() - timedelta(minutes=age_min))
        PredictionFactory(
            coin=coin,
            year=year,
            interval_low=year - width // 2,
            interval_high=year + width - width // 2,
            model_version=version,
            rejected=rejected,
        )
        coin.refresh_from_db()
        return coin

    return make


# --- claims ------------------------------------------------------------------------------------------------------------


def test_opening_a_coin_claims_it_and_another_curator_starting_gets_the_next_one(
    client, curator, other_curator, queued
):
    # given two coins in the queue, the older first
    first, second = queued(age_min=20), queued(age_min=10)
    Coin.objects.filter(pk__in=[first.pk, second.pk]).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )  # same age: the default order (most uncertain, then oldest, then id) puts `first` first
    client.force_login(curator)

    # when the first curator starts reviewing, and the second one starts too
    assert client.get(START).url == review_url(first)
    client.force_login(other_curator)
    second_start = client.get(START)

    # then each has a coin of their own, claimed for them
    assert second_start.url == review_url(second)
    claims = dict(Coin.objects.values_list("pk", "claimed_by__username"))
    assert claims == {first.pk: "curator1", second.pk: "curator2"}


def test_a_coin_claimed_by_another_curator_can_be_seen_but_not_decided(client, curator, other_curator, queued):
    # given a coin the other curator holds
    coin = queued()
    assert review.coin_claim(coin_id=coin.pk, curator=other_curator)
    client.force_login(curator)

    # when the curator opens it and tries to confirm it
    page = client.get(review_url(coin))
    post = client.post(review_url(coin), {"year": ""})

    # then the page says who holds it, the decision is refused, and the claim stays with its holder
    assert page.status_code == 200 and not page.context["held"]
    assert "curator2 is reviewing this coin" in page.content.decode()
    assert post.status_code == 400 and "curator2 is reviewing this coin" in post.content.decode()
    coin.refresh_from_db()
    assert coin.verified_year is None and coin.claimed_by == other_curator
    assert not Correction.objects.exists()


def test_a_claim_expires_and_then_another_curator_may_take_the_coin(curator, other_curator, queued, settings):
    # given a coin claimed for ten minutes by one curator
    settings.COINSITE_REVIEW_CLAIM_SECONDS = 600
    coin = queued()
    assert review.coin_claim(coin_id=coin.pk, curator=curator)
    assert not review.coin_claim(coin_id=coin.pk, curator=other_curator)

    # when the claim's time is over (the curator walked away)
    Coin.objects.filter(pk=coin.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))

    # then the other curator takes it, and the first one cannot take it back while it is held
    assert review.coin_claim(coin_id=coin.pk, curator=other_curator)
    assert not review.coin_claim(coin_id=coin.pk, curator=curator)
    coin.refresh_from_db()
    assert coin.claimed_by == other_curator
    assert timedelta(seconds=590) < coin.claimed_until - timezone.now() <= timedelta(seconds=600)


def test_claiming_a_coin_gives_back_the_curators_other_claim(curator, queued):
    first, second = queued(), queued()
    review.coin_claim(coin_id=first.pk, curator=curator)
    review.coin_claim(coin_id=second.pk, curator=curator)
    assert dict(Coin.objects.values_list("pk", "claimed_by")) == {first.pk: None, second.pk: curator.pk}


def test_claim_next_skips_coins_held_by_others(curator, other_curator, queued):
    held, free = queued(), queued()
    review.coin_claim(coin_id=held.pk, curator=other_curator)
    assert review.coin_claim_next(candidates=[held.pk, free.pk], curator=curator) == free.pk
    assert review.coin_claim_next(candidates=[held.pk], curator=curator) is None


def test_the_queue_shows_who_is_reviewing_a_coin(client, curator, other_curator, queued):
    coin = queued()
    review.coin_claim(coin_id=coin.pk, curator=other_curator)
    client.force_login(curator)
    assert "queued · curator2 reviewing" in client.get(reverse("admin:predictions_coin_changelist")).content.decode()


# --- undo ----------------------------------------------------------------------------------------------------------------


def test_undo_puts_a_confirmed_coin_back_in_the_queue_and_the_audit_keeps_both_rows(client, curator, queued):
    # given a coin the curator confirmed
    coin = queued(year=1874)
    client.force_login(curator)
    client.post(review_url(coin), {"year": ""})
    decision = Correction.objects.get()

    # when they undo it from the desk
    response = client.post(undo_url(decision))

    # then the coin is unverified and awaiting review again, claimed for them, and the audit has both rows
    assert response.status_code == 302 and response.url == review_url(coin)
    coin.refresh_from_db()
    assert (coin.verified_year, coin.verified_at, coin.excluded_from_training) == (None, None, False)
    assert coin.claimed_by == curator
    assert Coin.objects.filter(selectors.AWAITING_REVIEW, pk=coin.pk).exists()
    undo = Correction.objects.exclude(pk=decision.pk).get()
    assert (undo.undoes, undo.old_year, undo.new_year, undo.excluded) == (decision, 1874, None, False)
    assert Correction.objects.filter(coin=coin).count() == 2


def test_undo_restores_the_previous_verified_year_and_exclusion(curator, queued):
    # given a coin verified as 1880 earlier, then excluded by the curator
    coin = queued(year=1874)
    first = services.coin_correct(coin=coin, curator=curator, year=1880)
    earlier_verified_at = Coin.objects.get(pk=coin.pk).verified_at
    Correction.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=1))
    second = services.coin_correct(coin=coin, curator=curator, exclude=True)

    # when the exclusion is undone
    review.correction_undo(correction_id=second.pk, curator=curator)

    # then the coin is back to 1880, included, with its original verification time
    coin.refresh_from_db()
    assert (coin.verified_year, coin.excluded_from_training, coin.verified_at) == (1880, False, earlier_verified_at)


@pytest.mark.parametrize(
    "situation, message",
    [
        ("someone_elses", "only undo your own"),
        ("too_old", "for 10 minutes only"),
        ("undone_already", "undone already"),
        ("an_undo", "cannot be undone"),
        ("decided_since", "decided again since"),
    ],
)
def test_undo_is_refused_outside_its_rules(curator, other_curator, queued, situation, message, settings):
    settings.COINSITE_REVIEW_UNDO_SECONDS = 600
    coin = queued(year=1874)
    decision = services.coin_correct(coin=coin, curator=curator, year=1874)
    target = decision
    if situation == "someone_elses":
        target = services.coin_correct(coin=coin, curator=other_curator, year=1875)
    elif situation == "too_old":
        Correction.objects.filter(pk=decision.pk).update(created_at=timezone.now() - timedelta(seconds=601))
    elif situation == "undone_already":
        review.correction_undo(correction_id=decision.pk, curator=curator)
    elif situation == "an_undo":
        target = review.correction_undo(correction_id=decision.pk, curator=curator)
    elif situation == "decided_since":
        services.coin_correct(coin=coin, curator=other_curator, year=1876)
    rows_before = Correction.objects.count()
    state_before = Coin.objects.values("verified_year", "excluded_from_training").get(pk=coin.pk)

    with pytest.raises(ValidationError, match=message):
        review.correction_undo(correction_id=target.pk, curator=curator)

    assert Correction.objects.count() == rows_before
    assert Coin.objects.values("verified_year", "excluded_from_training").get(pk=coin.pk) == state_before


def test_the_desk_offers_undo_for_ones_own_recent_decisions_only(client, curator, other_curator, queued, settings):
    settings.COINSITE_REVIEW_UNDO_SECONDS = 600
    mine, old, theirs, current = queued(), queued(), queued(), queued()
    recent = services.coin_correct(coin=mine, curator=curator, year=1874)
    stale = services.coin_correct(coin=old, curator=curator, year=1874)
    Correction.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(minutes=11))
    services.coin_correct(coin=theirs, curator=other_curator, year=1874)
    client.force_login(curator)
    response = client.get(review_url(current))
    assert [correction.pk for correction, _url in response.context["undoable"]] == [recent.pk]
    assert undo_url(recent) in response.content.decode()


def test_an_undo_that_is_refused_says_why(client, curator, other_curator, queued):
    coin = queued()
    theirs = services.coin_correct(coin=coin, curator=other_curator, year=1874)
    client.force_login(curator)
    response = client.post(undo_url(theirs), follow=True)
    assert "only undo your own decisions" in response.content.decode()
    assert Correction.objects.count() == 1


# --- progress ----------------------------------------------------------------------------------------------------------


def test_progress_counts_todays_decisions_by_me_and_all_and_whats_left(curator, other_curator, queued):
    # given five coins; I decide two (and undo one of them), the other curator one, and one was decided yesterday
    coins = [queued() for _ in range(5)]
    services.coin_correct(coin=coins[0], curator=curator, year=1874)
    undone = services.coin_correct(coin=coins[1], curator=curator, year=1874)
    review.correction_undo(correction_id=undone.pk, curator=curator)
    services.coin_correct(coin=coins[2], curator=other_curator, year=1874)
    yesterday = services.coin_correct(coin=coins[3], curator=curator, year=1874)
    Correction.objects.filter(pk=yesterday.pk).update(created_at=timezone.now() - timedelta(days=1, hours=1))

    progress = selectors.review_progress(curator=curator)

    # then: 1 by me (the undone one does not count), 2 by all, 2 left (coins[1] is back, coins[4] never decided)
    assert (progress.mine_today, progress.all_today, progress.left) == (1, 2, 2)


def test_the_desk_shows_the_progress_line(client, curator, queued):
    coin, _other = queued(), queued()
    client.force_login(curator)
    body = client.get(review_url(coin)).content.decode()
    assert "Reviewed today: <strong>0</strong> by you" in body and "<strong>2</strong> left in the queue" in body


# --- bulk confirm --------------------------------------------------------------------------------------------------------


def test_bulk_confirm_takes_only_confident_predictions_and_says_what_it_skipped(client, curator, other_curator, queued):
    # given a narrow prediction, a wide one, a rejected one, one claimed by another curator, and a verified coin
    narrow = queued(year=1874, width=2)
    wide = queued(year=1874, width=12)
    rejected = queued(year=1874, width=1, rejected="unreadable")
    claimed = queued(year=1874, width=1)
    review.coin_claim(coin_id=claimed.pk, curator=other_curator)
    verified = queued(year=1874, width=1)
    Coin.objects.filter(pk=verified.pk).update(verified_year=1875)
    client.force_login(curator)

    # when the curator runs "Confirm predicted year" on all of them
    response = client.post(
        reverse("admin:predictions_coin_changelist") + "?state=all",
        {
            "action": "confirm_predicted_year",
            "_selected_action": [narrow.pk, wide.pk, rejected.pk, claimed.pk, verified.pk],
        },
        follow=True,
    )

    # then only the narrow one became a label, and the message counts the others by reason
    assert list(Correction.objects.values_list("coin_id", "new_year")) == [(narrow.pk, 1874)]
    body = response.content.decode()
    assert "Confirmed the predicted year of 1 coin(s); skipped 4 (" in body
    for reason in (
        "1 already decided",
        "1 being reviewed by another curator",
        "1 no year: unreadable",
        "1 not confident (interval wider than 2 years)",
    ):
        assert reason in body


def test_bulk_confirm_width_follows_the_setting(curator, queued, settings):
    settings.COINSITE_BULK_CONFIRM_MAX_WIDTH = 12
    coin = queued(width=12)
    result = services.coins_confirm_predicted(coins=[coin], curator=curator)
    assert (result.confirmed, result.skipped) == (1, 0)


def test_bulk_confirm_leaves_a_deleted_coin_alone(curator, queued):
    coin = queued(width=1)
    CorrectionFactory(coin=coin, curator=curator, new_year=None, excluded=False)
    services.coin_delete(coin=coin)
    result = services.coins_confirm_predicted(coins=[Coin.objects.get(pk=coin.pk)], curator=curator)
    assert (result.confirmed, result.skipped_by_reason) == (0, {"deleted by its collector": 1})


# --- the claim is race-free where row locks are real (PostgreSQL) ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_curators_racing_for_the_queue_never_get_the_same_coin_on_postgresql(postgres_row_locks):
    # given four curators and a queue of coins
    curators = [UserFactory(username=f"racer{i}", roles=["curator"], is_staff=True) for i in range(4)]
    version = ModelVersionFactory(version=3)
    coins = [CoinFactory(status=Coin.Status.PREDICTED) for _ in range(14)]
    for coin in coins:
        PredictionFactory(coin=coin, model_version=version)
    candidates = [coin.pk for coin in coins]

    for _round in range(3):
        # when all of them ask for the next coin of the same queue at the same moment
        got = at_once(
            *[lambda c=c, ids=tuple(candidates): review.coin_claim_next(candidates=ids, curator=c) for c in curators]
        )

        # then each got a coin, no two the same, and the rows say so
        assert all(isinstance(coin_id, int) for coin_id in got), got
        assert len(set(got)) == len(curators)
        holders = dict(Coin.objects.filter(pk__in=got).values_list("pk", "claimed_by"))
        assert holders == {coin_id: curator.pk for coin_id, curator in zip(got, curators, strict=True)}
        candidates = [pk for pk in candidates if pk not in got]

    # and racing for one coin, exactly one wins
    last = candidates[0]
    assert sorted(at_once(*[lambda c=c: review.coin_claim(coin_id=last, curator=c) for c in curators])) == [
        False,
        False,
        False,
        True,
    ]


@pytest.mark.django_db(transaction=True)
def test_curators_claiming_from_the_queue_with_skip_locked_never_get_the_same_coin_on_postgresql(postgres_row_locks):
    # given four curators and a queue of ten coins, all with the same uncertainty (so the order is a tie on it)
    curators = [UserFactory(username=f"desk{i}", roles=["curator"], is_staff=True) for i in range(4)]
    version = ModelVersionFactory(version=3)
    for _ in range(10):
        PredictionFactory(coin=CoinFactory(status=Coin.Status.PREDICTED), model_version=version)
    queue = Coin.objects.filter(selectors.AWAITING_REVIEW).order_by("-pred_no_year", "-pred_uncertainty", "id")

    claimed: list[int] = []
    for _round in range(3):
        # when all four ask the queue (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) for their next coin at once
        got = at_once(*[lambda c=c: review.coin_claim_first(queue=queue, curator=c) for c in curators])

        # then the ones that got a coin got different coins, and the rows say who holds which
        won = [coin_id for coin_id in got if coin_id is not None]
        assert all(isinstance(coin_id, int) or coin_id is None for coin_id in got), got
        assert len(set(won)) == len(won)
        holders = dict(Coin.objects.filter(pk__in=won).values_list("pk", "claimed_by"))
        assert sorted(holders.values()) == sorted(
            c.pk for c, coin_id in zip(curators, got, strict=True) if coin_id is not None
        )
        claimed += won
        # and each releases theirs by deciding nothing: taking the next coin releases the last, so park them
        Coin.objects.filter(pk__in=won).update(excluded_from_training=True)
    assert len(claimed) == len(set(claimed)) == 10  # every coin went to exactly one curator, none twice


def test_skip_claims_the_coin_after_this_one_in_the_queue_order(client, curator, queued):
    # given three coins, the most uncertain first (widest interval), and the curator holding the middle one
    sure, unsure, middle = queued(width=2), queued(width=40), queued(width=10)
    client.force_login(curator)
    assert client.get(START).url == review_url(unsure)
    review.coin_claim(coin_id=middle.pk, curator=curator)

    # when they skip it
    response = client.get(f"{START}?after={middle.pk}")

    # then the next one in the order (not the first free one) is theirs, and the skipped one is free again
    assert response.url == review_url(sure)
    assert Coin.objects.get(pk=middle.pk).claimed_by_id is None


def test_a_new_prediction_moves_the_coins_queue_figures_in_the_same_write(queued):
    # given a coin the model read (a year, an interval 10 years wide)
    coin = queued(year=1874, width=10)
    assert (coin.pred_year, coin.pred_no_year, coin.pred_rejected) == (1874, False, "")
    assert coin.pred_uncertainty == pytest.approx(__import__("math").log(11))

    # when a newer prediction rejects it
    latest = PredictionFactory(coin=coin, year=1900, rejected="unreadable", uncertainty=2.5)

    # then the coin's copy follows the latest prediction
    coin.refresh_from_db()
    assert (coin.last_prediction_id, coin.pred_year, coin.pred_no_year, coin.pred_rejected) == (
        latest.pk,
        1900,
        True,
        "unreadable",
    )
    assert coin.pred_uncertainty == 2.5


def test_the_decade_filter_offers_every_decade_without_reading_the_predictions(client, curator, queued):
    # given one coin predicted in the 1870s
    queued(year=1874)
    client.force_login(curator)

    # when the queue is shown, then the decade choices are the fixed list (1700s..2020s)
    response = client.get(reverse("admin:predictions_coin_changelist"))
    assert response.status_code == 200
    assert selectors.DECADES[0] == 1700 and selectors.DECADES[-1] == 2020
    assert b"decade=1870" in response.content and b"decade=2020" in response.content
    # and the decades the coins' latest predictions fall in, for whoever asks, come without the model's ordering
    assert selectors.prediction_decades() == [1870]


def test_searching_the_queue_by_id_finds_the_coin_and_a_digit_username(client, curator, queued):
    # given a coin, and a collector whose username is another coin's number
    coin, other = queued(), queued()
    digits = UserFactory(username=str(coin.pk + 1000))
    theirs = queued()
    Coin.objects.filter(pk=theirs.pk).update(owner=digits)
    client.force_login(curator)

    # when a curator searches for "#<id>" and for the digit username
    by_id = client.get(reverse("admin:predictions_coin_changelist"), {"q": f"#{coin.pk}"})
    by_name = client.get(reverse("admin:predictions_coin_changelist"), {"q": digits.username})

    # then each finds what it names and nothing else
    assert [c.pk for c in by_id.context["cl"].result_list] == [coin.pk]
    assert theirs.pk in [c.pk for c in by_name.context["cl"].result_list]
    assert other.pk not in [c.pk for c in by_name.context["cl"].result_list]


# --- the OCR's suggestion ----------------------------------------------------------------------------------------------


def test_the_desk_shows_the_ocrs_reading_as_a_suggestion_beside_a_rejection(client, curator, queued):
    # given a coin the reader judged not a coin, whose photos the OCR read as 1921 on both sides
    coin = queued(year=1850, rejected="not_a_coin")
    coin.predictions.update(
        readers="reader",
        ocr_reading={"year": 1921, "confidence": 0.97, "path": "detector", "side": "back", "turn": 0, "photos": 2},
    )
    client.force_login(curator)

    # when the curator opens it
    page = client.get(review_url(coin)).content.decode()

    # then the OCR's year is offered as a suggestion, not as a verified year, and the reader that answered is named
    assert 'id="review-ocr"' in page and "<strong>1921</strong>" in page and "both photos alike" in page
    assert "a suggestion, not a verified year" in page and "Answered by: reader" in page
    coin.refresh_from_db()
    assert coin.verified_year is None


def test_the_desk_shows_no_ocr_line_where_the_ocr_did_not_run(client, curator, queued):
    coin = queued()
    client.force_login(curator)
    assert 'id="review-ocr"' not in client.get(review_url(coin)).content.decode()
