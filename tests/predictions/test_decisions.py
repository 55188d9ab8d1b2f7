"""A curator's four decisions (confirm, correct, not a coin, unusable photo), the override a rejected coin needs for a
year, the audit row of each, the desk's messages, its alternatives, coins with the same photos, and the queue's order
for coins the model rejected."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from predictions import review, selectors, services
from predictions.decisions import coin_decide
from predictions.models import Coin, Correction
from tests.factories import CoinFactory, ModelVersionFactory, PredictionFactory, UserFactory

pytestmark = pytest.mark.django_db

Decision = Correction.Decision
CHANGELIST = reverse("admin:predictions_coin_changelist")


def review_url(coin: Coin) -> str:
    return reverse("admin:predictions_coin_review", kwargs={"coin_id": coin.pk})


@pytest.fixture
def queued(db):
    """A coin awaiting review whose latest prediction is `year` (or rejected: the year is then the model's guess)."""
    version = ModelVersionFactory(version=4)

    def make(year: int = 1874, rejected: str = "", age_min: int = 0, **coin_fields) -> Coin:
        coin = CoinFactory(status=Coin.Status.PREDICTED, **coin_fields)
        Coin.objects.filter(pk=coin.pk).update(created_at=timezone.now() - timedelta(minutes=age_min))
        PredictionFactory(
            coin=coin,
            year=year,
            interval_low=year - 30 if rejected else year - 2,
            interval_high=year,
            model_version=version,
            rejected=rejected,
            uncertainty=4.0 if rejected else 1.0,
            alternatives=[{"year": year, "p": 0.81}, {"year": year + 5, "p": 0.07}, {"year": 1986, "p": 0.004}],
        )
        coin.refresh_from_db()
        return coin

    return make


def test_not_a_coin_takes_the_coin_out_of_the_queue_without_a_year(curator, queued):
    # given a coin the model rejected as not a coin
    coin = queued(year=1999, rejected="not_a_coin")

    # when a curator marks it not a coin
    correction = coin_decide(coin=coin, curator=curator, decision=Decision.NOT_A_COIN)

    # then the coin has no year, is no unusable photo, has left the queue, and the audit row says what happened
    coin.refresh_from_db()
    assert (coin.not_a_coin, coin.verified_year, coin.excluded_from_training) == (True, None, False)
    assert not Coin.objects.filter(selectors.AWAITING_REVIEW, pk=coin.pk).exists()
    assert (correction.decision, correction.new_year, correction.not_a_coin) == (Decision.NOT_A_COIN, None, True)
    assert correction.summary == "marked not a coin"


def test_a_rejected_coin_gets_a_year_only_with_the_override_which_the_audit_records(curator, queued):
    # given a coin the model rejected
    coin = queued(year=1999, rejected="not_a_coin")

    # when a curator gives it a year without the override, then it is refused and nothing is written
    with pytest.raises(ValidationError) as refused:
        coin_decide(coin=coin, curator=curator, decision=Decision.CORRECT, year=1900)
    assert "override" in refused.value.error_dict
    assert not Correction.objects.exists()
    coin.refresh_from_db()
    assert coin.verified_year is None

    # when they tick the override, then the year is a label and the audit row says it was an override
    correction = coin_decide(coin=coin, curator=curator, decision=Decision.CORRECT, year=1900, override=True)
    coin.refresh_from_db()
    assert coin.verified_year == 1900
    assert (correction.decision, correction.override, correction.old_year) == (Decision.CORRECT, True, None)
    assert correction.summary == "corrected (no year) → 1900 (override)"


def test_the_override_is_recorded_only_where_it_was_one(curator, queued):
    # given a coin the model read
    coin = queued(year=1874)

    # when a curator confirms it with the override ticked anyway
    correction = coin_decide(coin=coin, curator=curator, decision=Decision.CORRECT, year=1874, override=True)

    # then it is a plain confirmation
    assert (correction.decision, correction.override, correction.summary) == (
        Decision.CONFIRM,
        False,
        "confirmed 1874",
    )


def test_a_non_coin_cannot_carry_a_year(curator, queued):
    coin = queued()
    with pytest.raises(ValidationError) as refused:
        coin_decide(coin=coin, curator=curator, decision=Decision.NOT_A_COIN, year=1874)
    assert "year" in refused.value.error_dict
    assert not Correction.objects.exists()


def test_undo_of_not_a_coin_puts_the_coin_back_in_the_queue(curator, queued):
    # given a coin a curator marked not a coin
    coin = queued(rejected="not_a_coin")
    decision = coin_decide(coin=coin, curator=curator, decision=Decision.NOT_A_COIN)

    # when they undo it
    undo = review.correction_undo(correction_id=decision.pk, curator=curator)

    # then the coin is back in the queue, unmarked, and the undo is an audit row of its own
    coin.refresh_from_db()
    assert (coin.not_a_coin, coin.verified_year) == (False, None)
    assert Coin.objects.filter(selectors.AWAITING_REVIEW, pk=coin.pk).exists()
    assert (undo.decision, undo.undoes_id, undo.not_a_coin) == (Decision.UNDO, decision.pk, False)


def test_desk_message_says_not_a_coin_and_override_in_words_without_none(client, curator, queued):
    # given two rejected coins on the desk
    client.force_login(curator)
    first, second = queued(rejected="not_a_coin", age_min=2), queued(rejected="unreadable", age_min=1)

    # when the curator marks the first not a coin and gives the second a year with the override
    client.post(review_url(first), {"year": "", "not_a_coin": "on"})
    response = client.post(review_url(second), {"year": "1900", "override": "on"}, follow=True)

    # then the messages say so in words, with no Python None
    texts = [str(message) for message in response.context["messages"]]
    assert f"Coin #{first.pk}: marked not a coin." in texts
    assert f"Coin #{second.pk}: corrected (no year) → 1900 (override)." in texts
    assert not any("None" in text for text in texts)


def test_desk_refuses_a_year_for_a_rejected_coin_without_the_override(client, curator, queued):
    # given a coin the model rejected
    client.force_login(curator)
    coin = queued(year=1999, rejected="not_a_coin")

    # when the curator types a year and saves without the override
    response = client.post(review_url(coin), {"year": "1900"})

    # then the desk answers 400 with the error on the override checkbox, and nothing is written
    assert response.status_code == 400
    assert "give it a year anyway" in " ".join(response.context["form"].errors["override"])
    assert not Correction.objects.exists()


def test_desk_shows_a_rejected_coin_with_its_reason_and_no_year(client, curator, queued):
    client.force_login(curator)
    coin = queued(year=1999, rejected="not_a_coin")
    page = client.get(review_url(coin)).content.decode()
    assert 'id="review-verdict"' in page and "Not a coin" in page
    assert "does not look like a coin" in page
    assert "1999" not in page and 'id="review-predicted"' not in page and "interval 19" not in page


def test_desk_shows_alternatives_without_zero_percent_rows(client, curator, queued):
    client.force_login(curator)
    coin = queued(year=1874)
    page = client.get(review_url(coin)).content.decode()
    assert 'id="review-alternatives"' in page
    assert "81 %" in page and "7 %" in page
    assert "1986" not in page and "0 %" not in page


def test_queue_puts_rejected_coins_after_the_coins_the_model_read(client, curator, queued):
    # given a rejected coin (high entropy, oldest) and two read ones
    client.force_login(curator)
    rejected = queued(rejected="not_a_coin", age_min=30)
    read_old, read_new = queued(year=1874, age_min=20), queued(year=1901, age_min=10)

    # when the curator opens the queue (most uncertain first by default)
    response = client.get(CHANGELIST)

    # then the rejected coin comes last, and shows "not a coin" in place of a year
    order = [coin.pk for coin in response.context["cl"].result_list]
    assert order == [read_old.pk, read_new.pk, rejected.pk]
    assert "not a coin" in response.content.decode()


def test_one_decision_applies_to_the_same_photos_of_another_collector_audited_per_coin(client, curator, queued):
    # given the same photo pair uploaded by two collectors, both awaiting review, and a third copy claimed by another
    client.force_login(curator)
    coin = queued(rejected="not_a_coin")
    same = {"front_image": coin.front_image.name, "back_image": coin.back_image.name}
    hashes = {"front_sha256": coin.front_sha256, "back_sha256": coin.back_sha256}
    twin = queued(rejected="not_a_coin", **same, **hashes)
    held = queued(rejected="not_a_coin", **same, **hashes)
    assert review.coin_claim(coin_id=held.pk, curator=UserFactory(roles=["curator"], is_staff=True))

    # when the desk shows the coin, then it links the other copies
    page = client.get(review_url(coin)).content.decode()
    assert f'Same photos as <a href="{review_url(twin)}"' in page
    assert "by another collector" in page

    # when the curator marks it not a coin for all of them
    response = client.post(review_url(coin), {"not_a_coin": "on", "same_photos": "on"}, follow=True)

    # then the twin got the same decision in an audit row of its own, the claimed copy was left alone with the reason
    twin.refresh_from_db()
    held.refresh_from_db()
    assert twin.not_a_coin and not held.not_a_coin
    original = Correction.objects.get(coin=coin)
    copied = Correction.objects.get(coin=twin)
    assert (copied.decision, copied.applied_from_id, copied.curator_id) == (
        Decision.NOT_A_COIN,
        original.pk,
        curator.pk,
    )
    assert not Correction.objects.filter(coin=held).exists()
    text = " ".join(str(message) for message in response.context["messages"])
    assert f"#{twin.pk}" in text and f"Coin #{held.pk} (same photos) left as it was" in text


def test_a_coin_marked_not_a_coin_shows_no_year_even_where_the_model_read_one(curator, queued):
    # given a coin the model read as 1874, which a curator marked not a coin
    coin = queued(year=1874)
    coin_decide(coin=coin, curator=curator, decision=Decision.NOT_A_COIN)
    coin.refresh_from_db()

    # then its year is none anywhere the coin's believed year is shown
    assert coin.display_year is None


def test_bulk_confirm_never_overrides_a_not_a_coin_decision(curator, queued):
    # given a confident prediction a curator marked not a coin
    coin = queued(year=1874)
    coin_decide(coin=coin, curator=curator, decision=Decision.NOT_A_COIN)

    # when bulk confirm runs over it
    result = services.coins_confirm_predicted(coins=Coin.objects.filter(pk=coin.pk), curator=curator)

    # then it is skipped as already decided, and it stays a non-coin
    assert (result.confirmed, result.skipped_by_reason) == (0, {"already decided": 1})
    coin.refresh_from_db()
    assert (coin.not_a_coin, coin.verified_year) == (True, None)


def test_migration_gives_old_decisions_their_kind_from_what_they_recorded(curator, queued):
    # given rows written before decisions had kinds (the column's default, "correct", on every one of them)
    migration = importlib.import_module("predictions.migrations.0009_curator_decisions_not_a_coin")
    coin = queued(year=1874)
    confirm = Correction.objects.create(coin=coin, curator=curator, old_year=1874, new_year=1874)
    correct = Correction.objects.create(coin=coin, curator=curator, old_year=1874, new_year=1880)
    unusable = Correction.objects.create(coin=coin, curator=curator, old_year=1880, new_year=None, excluded=True)
    undo = Correction.objects.create(coin=coin, curator=curator, old_year=1880, new_year=1874, undoes=unusable)

    # when the migration's data step runs
    migration.type_old_decisions(django_apps, None)

    # then each row says what it was, in words without None
    kinds = {row.pk: (row.decision, row.summary) for row in Correction.objects.all()}
    assert kinds == {
        confirm.pk: (Decision.CONFIRM, "confirmed 1874"),
        correct.pk: (Decision.CORRECT, "corrected 1874 → 1880"),
        unusable.pk: (Decision.UNUSABLE, "marked unusable"),
        undo.pk: (Decision.UNDO, "1880 → 1874"),
    }
