"""The curators' review queue in the admin: who reaches it, what a decision writes, filters, next coin, audit trail."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from predictions.models import Coin, Correction, Prediction
from tests.factories import CoinFactory, CorrectionFactory, ModelVersionFactory, PredictionFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:predictions_coin_changelist")
ADMIN_LOGIN = reverse("admin:login")


def review_url(coin: Coin, **filters) -> str:
    url = reverse("admin:predictions_coin_review", kwargs={"coin_id": coin.pk})
    if filters:
        url += "?" + urlencode({"_changelist_filters": urlencode(filters)})
    return url


@pytest.fixture
def model_version(db):
    return ModelVersionFactory(version=3)


@pytest.fixture
def queued(model_version):
    """Make a coin awaiting review: predicted `year` with an interval of `width` years, created `age_min` ago."""

    def make(
        year: int = 1874, width: int = 10, age_min: int = 0, uncertainty: float | None = None, **coin_fields
    ) -> Coin:
        coin = CoinFactory(status=Coin.Status.PREDICTED, **coin_fields)
        if age_min:
            Coin.objects.filter(pk=coin.pk).update(created_at=timezone.now() - timedelta(minutes=age_min))
            coin.refresh_from_db()
        PredictionFactory(
            coin=coin,
            year=year,
            interval_low=year - width // 2,
            interval_high=year + width - width // 2,
            model_version=model_version,
            uncertainty=uncertainty,
        )
        return coin

    return make


def user_with_role(role: str, request):
    if role == "anonymous":
        return None
    if role == "superuser":
        return UserFactory(username="root", is_staff=True, is_superuser=True)
    return request.getfixturevalue(role)


def changelist_ids(response) -> list[int]:
    return [coin.pk for coin in response.context["cl"].result_list]


# --- who reaches what (must show: only curators reach the review queue and correct) ------------------------------------

ROLE_OUTCOMES = {
    # role: (queue list, review page, correction POST)
    "anonymous": ("login", "login", "login"),
    "collector": ("login", "login", "login"),
    "model_owner": (200, 403, 403),
    "curator": (200, 200, "saved"),
    "superuser": (200, 200, "saved"),
}


@pytest.mark.parametrize("role", list(ROLE_OUTCOMES))
def test_only_curators_reach_the_review_queue_and_correct(role, request, client, queued):
    # given a coin awaiting review and a user in the role
    coin = queued(year=1874)
    user = user_with_role(role, request)
    if user is not None:
        client.force_login(user)
    queue_expected, review_expected, post_expected = ROLE_OUTCOMES[role]

    # when they open the queue, the review page, and post a correction
    queue = client.get(CHANGELIST)
    review = client.get(review_url(coin))
    post = client.post(review_url(coin), {"year": "1880"})

    # then only curators (and superusers, who hold every permission) get through and write a label
    for response, expected in [(queue, queue_expected), (review, review_expected), (post, post_expected)]:
        if expected == "login":
            assert response.status_code == 302 and response.url.startswith(ADMIN_LOGIN)
        elif expected == "saved":
            assert response.status_code == 302 and not response.url.startswith(ADMIN_LOGIN)
        else:
            assert response.status_code == expected
    coin.refresh_from_db()
    if post_expected == "saved":
        assert coin.verified_year == 1880
        assert Correction.objects.get(coin=coin).curator == user
    else:
        assert coin.verified_year is None
        assert not Correction.objects.exists()


def test_model_owner_sees_coins_but_no_bulk_action_and_no_review_button(client, model_owner, queued):
    queued()
    client.force_login(model_owner)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert "confirm_predicted_year" not in response.content.decode()
    assert "Start reviewing" not in response.content.decode()
    assert response.context["action_form"] is None


def test_model_owner_opening_a_coin_gets_the_read_only_page(client, model_owner, queued):
    coin = queued()
    client.force_login(model_owner)
    response = client.get(reverse("admin:predictions_coin_change", args=[coin.pk]))
    assert response.status_code == 200
    assert 'name="year"' not in response.content.decode()
    assert reverse("coin-image", kwargs={"coin_id": coin.pk, "side": "front"}) in response.content.decode()


def test_model_owner_cannot_run_the_bulk_action(client, model_owner, queued):
    coin = queued()
    client.force_login(model_owner)
    client.post(CHANGELIST, {"action": "confirm_predicted_year", "_selected_action": [coin.pk]})
    coin.refresh_from_db()
    assert coin.verified_year is None and not Correction.objects.exists()


def test_curator_sees_the_queue_with_thumbnails_bulk_action_and_review_button(client, curator, queued):
    coin = queued(year=1874, width=12)
    client.force_login(curator)
    response = client.get(CHANGELIST)
    body = response.content.decode()
    assert "confirm_predicted_year" in body and "Start reviewing" in body
    for side in ("front", "back"):
        assert reverse("coin-image", kwargs={"coin_id": coin.pk, "side": side}) + "?size=thumb" in body
    assert "1868–1880<small>width 12</small>" in body and "v3" in body
    assert "Reviewed today:" in body and "left in the queue" in body


def test_curator_opening_a_coin_lands_on_its_review_page_keeping_the_filters(client, curator, queued):
    coin = queued()
    client.force_login(curator)
    change_url = reverse("admin:predictions_coin_change", args=[coin.pk])
    response = client.get(change_url + "?" + urlencode({"_changelist_filters": "order=oldest"}))
    assert response.status_code == 302
    assert response.url == review_url(coin, order="oldest")


# --- the review page and its one form -----------------------------------------------------------------------------------


def test_review_page_shows_both_photos_the_prediction_and_earlier_corrections(client, curator, queued):
    coin = queued(year=1874, width=10)
    CorrectionFactory(coin=coin, curator=UserFactory(username="oldcurator"), old_year=1874, new_year=1875)
    client.force_login(curator)
    response = client.get(review_url(coin))
    body = response.content.decode()
    assert response.status_code == 200
    for side in ("front", "back"):
        assert f'src="{reverse("coin-image", kwargs={"coin_id": coin.pk, "side": side})}"' in body
    assert "1869–1879" in body and "coin-year v3" in body
    assert "oldcurator" in body
    year_input = re.search(r'<input[^>]*name="year"[^>]*>', body).group(0)
    # no autofocus: the hotkeys act on the page, and never inside the year field
    assert "autofocus" not in year_input and "value=" not in year_input


def test_enter_with_an_empty_year_confirms_the_predicted_year(client, curator, queued):
    coin = queued(year=1874)
    client.force_login(curator)
    response = client.post(review_url(coin), {"year": ""})
    assert response.status_code == 302
    coin.refresh_from_db()
    correction = Correction.objects.get(coin=coin)
    assert (correction.curator, correction.old_year, correction.new_year, correction.excluded) == (
        curator,
        1874,
        1874,
        False,
    )
    assert coin.verified_year == 1874 and coin.verified_at is not None and not coin.excluded_from_training


def test_typed_year_corrects_the_prediction(client, curator, queued):
    coin = queued(year=1874)
    client.force_login(curator)
    client.post(review_url(coin), {"year": "1903"})
    coin.refresh_from_db()
    correction = Correction.objects.get(coin=coin)
    assert (correction.old_year, correction.new_year) == (1874, 1903)
    assert coin.verified_year == 1903


def test_unusable_photo_excludes_the_coin_from_training_without_a_year(client, curator, queued):
    coin = queued(year=1874)
    client.force_login(curator)
    client.post(review_url(coin), {"year": "", "exclude": "on"})
    coin.refresh_from_db()
    correction = Correction.objects.get(coin=coin)
    assert (correction.old_year, correction.new_year, correction.excluded) == (1874, None, True)
    assert coin.excluded_from_training and coin.verified_year is None
    assert coin.pk not in changelist_ids(client.get(CHANGELIST))


@pytest.mark.parametrize(
    "typed, reason", [("1600", "between 1700 and 2025"), ("abc", "as digits"), ("20255", "at most 4 characters")]
)
def test_a_bad_year_is_refused_with_the_reason_and_writes_nothing(client, curator, queued, typed, reason):
    coin = queued()
    client.force_login(curator)
    response = client.post(review_url(coin), {"year": typed})
    assert response.status_code == 400
    assert reason in response.content.decode()
    coin.refresh_from_db()
    assert coin.verified_year is None and not Correction.objects.exists()


def test_a_coin_without_prediction_cannot_be_confirmed_blindly(client, curator):
    coin = CoinFactory(status=Coin.Status.FAILED)
    client.force_login(curator)
    response = client.post(review_url(coin), {"year": ""})
    assert response.status_code == 400
    assert "no predicted year to confirm" in response.content.decode()
    assert not Correction.objects.exists()
    client.post(review_url(coin), {"year": "1790"})
    coin.refresh_from_db()
    assert coin.verified_year == 1790


def test_saving_opens_the_next_coin_of_the_queue_then_returns_to_the_list(client, curator, queued):
    # given three coins in the queue, oldest first
    first, second, third = queued(age_min=30), queued(age_min=20), queued(age_min=10)
    client.force_login(curator)

    # when each is decided in turn, then the next one opens, and after the last the list
    assert client.post(review_url(first), {"year": ""}).url == review_url(second)
    assert client.post(review_url(second), {"year": "1901"}).url == review_url(third)
    response = client.post(review_url(third), {"year": "", "exclude": "on"})
    assert response.url == CHANGELIST
    assert Correction.objects.count() == 3


def test_next_coin_follows_the_queue_filters_and_order(client, curator, queued):
    # given coins of different ages, and a curator working "newest first" on uploads only
    old = queued(age_min=30)
    newest = queued(age_min=10)
    middle = queued(age_min=20)
    imported = queued(age_min=5, source=Coin.Source.IMPORT)
    filters = {"order": "newest", "source__exact": "upload"}
    client.force_login(curator)

    # when they start reviewing, and save each coin
    start = client.get(
        reverse("admin:predictions_coin_review_start") + "?" + urlencode({"_changelist_filters": urlencode(filters)})
    )

    # then the coins come newest first, the imported one never, and the filters travel along
    assert start.url == review_url(newest, **filters)
    assert client.post(review_url(newest, **filters), {"year": ""}).url == review_url(middle, **filters)
    assert client.post(review_url(middle, **filters), {"year": ""}).url == review_url(old, **filters)
    last = client.post(review_url(old, **filters), {"year": ""})
    assert last.url == CHANGELIST + "?" + urlencode(filters)
    assert not Correction.objects.filter(coin=imported).exists()


def test_skip_opens_the_next_coin_and_leaves_this_one_queued(client, curator, queued):
    first, second = queued(age_min=20), queued(age_min=10)
    client.force_login(curator)
    response = client.get(review_url(first))
    assert response.context["queue_count"] == 2
    assert client.get(response.context["skip_url"]).url == review_url(second)
    # the last coin's skip goes back to the list; the skipped coin stays in the queue, its claim given back
    assert client.get(client.get(review_url(second)).context["skip_url"]).url == CHANGELIST
    assert first.pk in changelist_ids(client.get(CHANGELIST))
    assert Coin.objects.get(pk=first.pk).claimed_by is None


def test_bulk_confirm_writes_a_correction_per_coin_and_leaves_verified_coins_alone(client, curator, queued):
    # given two queued coins with confident predictions and one already verified, all selected
    a, b = queued(year=1874, width=2), queued(year=1920, width=0)
    verified = queued(year=1800, width=2)
    Coin.objects.filter(pk=verified.pk).update(verified_year=1805)
    client.force_login(curator)

    # when the curator runs "Confirm predicted year" on the "all coins" list
    response = client.post(
        CHANGELIST + "?state=all",
        {"action": "confirm_predicted_year", "_selected_action": [a.pk, b.pk, verified.pk]},
        follow=True,
    )

    # then each queued coin is confirmed through the same service, and the verified one is untouched
    assert {(c.coin_id, c.old_year, c.new_year) for c in Correction.objects.all()} == {
        (a.pk, 1874, 1874),
        (b.pk, 1920, 1920),
    }
    assert Coin.objects.get(pk=verified.pk).verified_year == 1805
    assert "Confirmed the predicted year of 2 coin(s); skipped 1 (1 already decided)." in response.content.decode()


# --- the queue's filters and search ----------------------------------------------------------------------------------


@pytest.fixture
def assorted(queued):
    """One coin per state: awaiting (two decades), verified, excluded, pending (no prediction yet), imported."""
    coins = {
        "awaiting_1870s": queued(year=1874, width=10),
        "awaiting_1920s": queued(year=1921, width=50),
        "verified": queued(year=1874),
        "excluded": queued(year=1874),
        "pending": CoinFactory(status=Coin.Status.PENDING),
        "imported": queued(year=1950, width=20, source=Coin.Source.IMPORT),
    }
    Coin.objects.filter(pk=coins["verified"].pk).update(verified_year=1875)
    Coin.objects.filter(pk=coins["excluded"].pk).update(excluded_from_training=True)
    return coins


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", {"awaiting_1870s", "awaiting_1920s", "imported"}),
        ("state=awaiting", {"awaiting_1870s", "awaiting_1920s", "imported"}),
        ("state=verified", {"verified"}),
        ("state=excluded", {"excluded"}),
        ("state=all", {"awaiting_1870s", "awaiting_1920s", "verified", "excluded", "pending", "imported"}),
        ("source__exact=import", {"imported"}),
        ("state=all&decade=1870", {"awaiting_1870s", "verified", "excluded"}),
        ("decade=1920", {"awaiting_1920s"}),
    ],
)
def test_queue_filters_return_the_right_coins(client, curator, assorted, query, expected):
    client.force_login(curator)
    response = client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    assert set(changelist_ids(response)) == {assorted[name].pk for name in expected}


def test_default_queue_is_most_uncertain_first_and_oldest_first_is_one_click(client, curator, queued):
    # given coins whose predictions stored an uncertainty, and an old one from before it was stored (its interval
    # stands in: ln(30 + 1) = 3.43 nats)
    old_sure = queued(uncertainty=0.1, age_min=30)
    new_unsure = queued(uncertainty=4.0, age_min=10)
    mid = queued(uncertainty=1.5, age_min=20)
    legacy = queued(width=30, age_min=40)
    client.force_login(curator)
    assert changelist_ids(client.get(CHANGELIST)) == [new_unsure.pk, legacy.pk, mid.pk, old_sure.pk]
    assert changelist_ids(client.get(CHANGELIST + "?order=oldest")) == [legacy.pk, old_sure.pk, mid.pk, new_unsure.pk]
    body = client.get(CHANGELIST).content.decode()
    assert "≈31 y" in body and "column-uncertainty sorted descending" in body


def test_unknown_filter_values_do_not_break_the_list(client, curator, queued):
    queued()
    client.force_login(curator)
    for query in ("state=bogus", "order=bogus", "decade=abc"):
        response = client.get(f"{CHANGELIST}?{query}")
        assert response.status_code == 302 and "e=1" in response.url


@pytest.mark.parametrize("term", ["{id}", "#{id}"])
def test_search_by_coin_id(client, curator, queued, term):
    wanted = queued()
    queued()
    client.force_login(curator)
    response = client.get(CHANGELIST, {"q": term.format(id=wanted.pk)})
    assert changelist_ids(response) == [wanted.pk]


def test_search_by_owner_username(client, curator, queued):
    wanted = queued(owner=UserFactory(username="numismatist"))
    queued(owner=UserFactory(username="someoneelse"))
    client.force_login(curator)
    response = client.get(CHANGELIST, {"q": "numism"})
    assert changelist_ids(response) == [wanted.pk]


def test_queue_query_count_does_not_grow_with_the_number_of_coins(
    client, curator, queued, django_assert_max_num_queries
):
    client.force_login(curator)
    for _ in range(3):
        queued()
    client.get(CHANGELIST)  # warm caches (content types, permissions)
    with django_assert_max_num_queries(12) as few:
        client.get(CHANGELIST)
    for _ in range(30):
        queued(year=1800 + _ * 7)
    with django_assert_max_num_queries(len(few.captured_queries)) as many:
        response = client.get(CHANGELIST)
    assert len(changelist_ids(response)) == 33
    assert len(many.captured_queries) == len(few.captured_queries)


# --- the audit trail is read-only ------------------------------------------------------------------------------------


def test_corrections_cannot_be_added_changed_or_deleted_in_the_admin_even_by_a_superuser(client):
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    correction = CorrectionFactory(old_year=1874, new_year=1880)
    client.force_login(superuser)

    listing = client.get(reverse("admin:predictions_correction_changelist"))
    assert listing.status_code == 200
    assert reverse("admin:predictions_correction_add") not in listing.content.decode()
    assert client.get(reverse("admin:predictions_correction_add")).status_code == 403
    assert client.get(reverse("admin:predictions_correction_change", args=[correction.pk])).status_code == 200
    change = client.post(
        reverse("admin:predictions_correction_change", args=[correction.pk]), {"old_year": 1700, "new_year": 1701}
    )
    assert change.status_code == 403
    assert (
        client.post(reverse("admin:predictions_correction_delete", args=[correction.pk]), {"post": "yes"}).status_code
        == 403
    )
    client.post(
        reverse("admin:predictions_correction_changelist"),
        {"action": "delete_selected", "_selected_action": [correction.pk], "post": "yes"},
    )
    correction.refresh_from_db()
    assert (correction.old_year, correction.new_year) == (1874, 1880)


def test_curator_may_read_corrections_but_not_add_them_in_the_admin(client, curator):
    CorrectionFactory()
    client.force_login(curator)
    assert client.get(reverse("admin:predictions_correction_changelist")).status_code == 200
    assert client.get(reverse("admin:predictions_correction_add")).status_code == 403


def test_predictions_are_read_only_in_the_admin(client, queued):
    coin = queued(year=1874)
    prediction = Prediction.objects.get(coin=coin)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    assert client.get(reverse("admin:predictions_prediction_changelist")).status_code == 200
    assert client.get(reverse("admin:predictions_prediction_add")).status_code == 403
    response = client.post(reverse("admin:predictions_prediction_change", args=[prediction.pk]), {"year": 1999})
    assert response.status_code == 403
    prediction.refresh_from_db()
    assert prediction.year == 1874


def test_coins_cannot_be_edited_in_the_admin_form(client, curator, queued):
    """verified_year changes only through coin_correct(); the admin form must not be a side door."""
    coin = queued()
    client.force_login(curator)
    response = client.post(reverse("admin:predictions_coin_change", args=[coin.pk]), {"verified_year": 1900})
    assert response.status_code == 403
    coin.refresh_from_db()
    assert coin.verified_year is None


def test_staff_whose_only_group_is_collector_cannot_list_the_coins_in_the_admin(client, collector):
    # given a staff member whose only role is collector, and another collector's coin
    staff = UserFactory(username="staff-collector", is_staff=True, roles=["collector"])
    CoinFactory(owner=collector)
    client.force_login(staff)

    # when they open the coins in the admin, then they are refused, and the index offers no coins
    assert client.get(reverse("admin:predictions_coin_changelist")).status_code == 403
    assert reverse("admin:predictions_coin_changelist") not in client.get(reverse("admin:index")).content.decode()


def test_staff_given_the_view_permission_of_their_own_may_list_the_coins(client, collector):
    staff = UserFactory(username="staff-viewer", is_staff=True, roles=["collector"])
    staff.user_permissions.add(Permission.objects.get(codename="view_coin", content_type__app_label="predictions"))
    CoinFactory(owner=collector)
    client.force_login(staff)

    assert client.get(reverse("admin:predictions_coin_changelist")).status_code == 200
