"""My coins (filters, pagination), the footer and accounts: what a signed-in collector sees around their coins."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from predictions.models import Coin
from predictions.roles import COLLECTOR
from tests.factories import CoinFactory, ModelVersionFactory, PredictionFactory
from tests.pages import page_text as _text

pytestmark = pytest.mark.django_db


# --- my coins: filters and pagination --------------------------------------------------------------------------------


def _coin_ids(response) -> list[int]:
    return [coin.id for coin in response.context["page"].object_list]


def test_my_coins_lists_only_own_coins_newest_first_with_year_and_status(client, collector, other_collector):
    older = PredictionFactory(coin=CoinFactory(owner=collector, status=Coin.Status.PREDICTED), year=1874).coin
    newer = CoinFactory(owner=collector)
    CoinFactory(owner=other_collector)
    client.force_login(collector)

    response = client.get(reverse("coin-list"))
    text = _text(response)

    assert _coin_ids(response) == [newer.id, older.id]
    assert "1874, likely 1869–1879" in text
    assert "Waiting" in text and "Dated" in text
    assert f"/coins/{older.id}/front/?size=thumb" in response.content.decode()


def test_my_coins_filters_by_year_range(client, collector):
    coins = {
        year: PredictionFactory(coin=CoinFactory(owner=collector, status=Coin.Status.PREDICTED), year=year).coin
        for year in (1750, 1850, 1950)
    }
    client.force_login(collector)

    response = client.get(reverse("coin-list"), {"year_min": 1800, "year_max": 1900})

    assert response.status_code == 200
    assert _coin_ids(response) == [coins[1850].id]
    assert "1 coin matches these filters" in _text(response)


def test_my_coins_filters_by_status(client, collector):
    failed = CoinFactory(owner=collector, status=Coin.Status.FAILED)
    CoinFactory(owner=collector, status=Coin.Status.PENDING)
    client.force_login(collector)

    response = client.get(reverse("coin-list"), {"show": "failed"})

    assert _coin_ids(response) == [failed.id]


def _predicted(owner, **prediction) -> Coin:
    return PredictionFactory(coin=CoinFactory(owner=owner, status=Coin.Status.PREDICTED), **prediction).coin


def test_my_coins_shows_each_verdict_apart_and_does_not_count_non_coins_as_coins(client, collector):
    # given a dated coin, a verified one, two photos that are not coins, an unreadable date and a coin still waiting
    dated = _predicted(collector, year=1874)
    verified = CoinFactory(owner=collector, status=Coin.Status.PREDICTED, verified_year=1901)
    cats = [_predicted(collector, year=1999, rejected="not_a_coin") for _ in range(2)]
    blurred = _predicted(collector, year=1950, rejected="unreadable")
    waiting = CoinFactory(owner=collector)
    client.force_login(collector)

    # when the collector opens "My coins", then each filter
    everything = client.get(reverse("coin-list"))
    shown = {
        key: _coin_ids(client.get(reverse("coin-list"), {"show": key}))
        for key in ("dated", "not_a_coin", "unreadable", "waiting")
    }

    # then the count names the coins and, apart, what is not a coin; every row says what the model found
    text = _text(everything)
    assert "4 coins, and 2 uploads that are not a coin" in text
    assert "All 6" in text and "Dated 2" in text and "Not a coin 2" in text and "Date not readable 1" in text
    assert "Waiting for the model 1" in text
    assert shown == {
        "dated": [verified.id, dated.id],
        "not_a_coin": [cats[1].id, cats[0].id],
        "unreadable": [blurred.id],
        "waiting": [waiting.id],
    }
    html = everything.content.decode()
    assert html.count('data-verdict="not_a_coin"') == 2 and "badge--predicted" not in html
    assert "1999" not in text and "1950" not in text  # a rejected photo's best guess is no year


def test_year_filter_never_finds_a_rejected_photo_by_its_best_guess(client, collector):
    dated = _predicted(collector, year=1874)
    _predicted(collector, year=1875, rejected="not_a_coin")
    client.force_login(collector)

    response = client.get(reverse("coin-list"), {"year_min": 1870, "year_max": 1880})

    assert _coin_ids(response) == [dated.id]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"year_min": "abc"}, "Year from: Enter a whole number."),
        ({"year_max": "3000"}, "Year to: Ensure this value is less than or equal to 2025."),
        ({"show": "lost"}, "Show: Select a valid choice."),
        ({"year_min": "1900", "year_max": "1800"}, "“Year from” (1900) is after “Year to” (1800)"),
    ],
)
def test_invalid_filter_values_get_a_clear_message_not_a_500(client, collector, params, message):
    coin = CoinFactory(owner=collector)
    client.force_login(collector)

    response = client.get(reverse("coin-list"), params)

    assert response.status_code == 400
    assert message in _text(response)
    assert "The filter was not applied." in _text(response)
    assert _coin_ids(response) == [coin.id]


def test_my_coins_are_paginated_by_twelve(client, collector):
    coins = [CoinFactory(owner=collector) for _ in range(13)]
    client.force_login(collector)

    first = client.get(reverse("coin-list"))
    second = client.get(reverse("coin-list"), {"page": 2})

    assert len(_coin_ids(first)) == 12
    assert _coin_ids(second) == [coins[0].id]
    assert "Page 1 of 2" in _text(first)
    assert "Page 2 of 2" in _text(second)


@pytest.mark.parametrize("page", ["999", "abc", "-1"])
def test_out_of_range_page_numbers_show_a_page_not_an_error(client, collector, page):
    CoinFactory(owner=collector)
    client.force_login(collector)

    response = client.get(reverse("coin-list"), {"page": page})

    assert response.status_code == 200
    assert len(_coin_ids(response)) == 1


def test_page_links_keep_the_filters(client, collector):
    for _ in range(13):
        CoinFactory(owner=collector, status=Coin.Status.FAILED)
    client.force_login(collector)

    html = client.get(reverse("coin-list"), {"status": "failed"}).content.decode()

    assert 'href="?status=failed&amp;page=2"' in html


def test_empty_history_invites_a_first_upload(client, collector):
    client.force_login(collector)

    assert "No coins yet." in _text(client.get(reverse("coin-list")))


# --- footer ----------------------------------------------------------------------------------------------------------


def test_footer_shows_the_production_model_and_its_cross_validated_mae(client, collector):
    ModelVersionFactory(version=7, is_production=True, metrics={"mae": 12.54, "baseline_mae": 81.0})
    client.force_login(collector)

    text = _text(client.get(reverse("coin-list")))

    assert "Model in production: coin-year v7, cross-validated MAE 12.5 years" in text
    assert "(always guessing the median year: 81.0)" in text


def test_footer_says_when_no_model_is_in_production(client):
    ModelVersionFactory(version=1, is_production=False)

    assert "No model in production yet" in _text(client.get(reverse("coin-list")))


# --- accounts --------------------------------------------------------------------------------------------------------


def test_sign_up_makes_a_signed_in_collector(client):
    response = client.post(
        reverse("signup"),
        {"username": "numis", "password1": "a-long-coin-phrase-42", "password2": "a-long-coin-phrase-42"},
    )

    user = get_user_model().objects.get(username="numis")
    assert response.status_code == 302
    assert response["Location"] == reverse("coin-upload")
    assert list(user.groups.values_list("name", flat=True)) == [COLLECTOR]
    assert client.get(reverse("coin-list")).context["user"] == user


def test_sign_up_with_mismatched_passwords_says_so(client):
    response = client.post(
        reverse("signup"), {"username": "numis", "password1": "a-long-coin-phrase-42", "password2": "other-phrase-42"}
    )

    assert response.status_code == 400
    assert "The two password fields didn’t match." in _text(response)
    assert not get_user_model().objects.filter(username="numis").exists()


def test_sign_in_and_sign_out(client, collector):
    response = client.post(reverse("login"), {"username": "collector1", "password": "correct-horse-battery"})
    assert response.status_code == 302
    assert response["Location"] == reverse("coin-list")

    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert b"What year is your coin?" in client.get(reverse("coin-list")).content


def test_wrong_password_is_refused_with_a_message(client, collector):
    response = client.post(reverse("login"), {"username": "collector1", "password": "wrong"})

    assert response.status_code == 200
    assert "That username and password do not match an account." in _text(response)
