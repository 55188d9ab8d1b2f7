"""A collector's delete never erases the audit trail or a training label: such a coin is hidden from its collector
(404 everywhere they look) and stays, with its Corrections, label and photos, for curators and training."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions import inference, services
from predictions.models import Coin, Correction
from predictions.sweeps import photo_orphans_sweep
from tests.factories import CoinFactory, ModelVersionFactory, PredictionFactory
from training.models import DatasetVersion
from training.selectors import dataset_manifest, labelled_coins
from training.services.datasets import dataset_samples
from training.services.rescore import coins_rescore_now

pytestmark = pytest.mark.django_db


def files_under(root) -> set[str]:
    return {str(path) for path in Path(root).rglob("*") if path.is_file()} if Path(root).exists() else set()


@pytest.fixture
def corrected_coin(collector, curator):
    """A collector's coin with a prediction of 1874 that a curator corrected to 1880, then to 1881."""
    coin = CoinFactory(owner=collector, status=Coin.Status.PREDICTED)
    PredictionFactory(coin=coin, year=1874, model_version=ModelVersionFactory(version=4))
    services.coin_correct(coin=coin, curator=curator, year=1880)
    services.coin_correct(coin=coin, curator=curator, year=1881)
    return coin


@pytest.fixture
def api(collector) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")
    return client


@pytest.mark.parametrize("how", ["site", "api"])
def test_deleting_a_corrected_coin_keeps_its_corrections_and_training_label(
    how, client, api, collector, corrected_coin, settings, django_capture_on_commit_callbacks
):
    # given a corrected coin: two Corrections, a label (1881) in the training set, two photo files
    coin = corrected_coin
    corrections_before = list(Correction.objects.filter(coin=coin).values_list("pk", "old_year", "new_year"))
    files_before = files_under(settings.MEDIA_ROOT)
    assert len(corrections_before) == 2 and len(files_before) == 2
    assert coin.pk in {row["coin_id"] for row in dataset_manifest(kind=DatasetVersion.Kind.TRAINING)} | {
        row["coin_id"] for row in dataset_manifest(kind=DatasetVersion.Kind.EVALUATION)
    }

    # when its collector deletes it, on the site or through the API
    client.force_login(collector)
    with django_capture_on_commit_callbacks(execute=True):
        if how == "site":
            response = client.post(reverse("coin-delete", kwargs={"coin_id": coin.pk}))
            assert response.status_code == 302
        else:
            assert api.delete(f"/api/coins/{coin.pk}/").status_code == 204

    # then the Correction rows are all there, unchanged
    assert list(Correction.objects.filter(coin=coin).values_list("pk", "old_year", "new_year")) == corrections_before
    # and the training label too: the coin is still a labelled coin, in the manifest, with its photos readable
    coin.refresh_from_db()
    assert coin.deleted_at is not None and coin.verified_year == 1881
    assert labelled_coins().filter(pk=coin.pk).exists()
    manifest_rows = [
        row
        for kind in (DatasetVersion.Kind.TRAINING, DatasetVersion.Kind.EVALUATION)
        for row in dataset_manifest(kind=kind)
    ]
    assert [(row["coin_id"], row["year"]) for row in manifest_rows if row["coin_id"] == coin.pk] == [(coin.pk, 1881)]
    [sample] = dataset_samples(coins=[coin])
    assert sample.year == 1881 and Path(sample.front).is_file() and Path(sample.back).is_file()
    # the photos stay, even through the orphan sweep (the hidden row still names them)
    photo_orphans_sweep(grace_seconds=0)
    assert files_under(settings.MEDIA_ROOT) == files_before
    print(f"\nafter the {how} delete: {len(corrections_before)} Corrections kept, label {coin.verified_year} kept")


def test_a_deleted_coin_is_gone_for_its_collector_everywhere(client, api, collector, corrected_coin):
    coin = corrected_coin
    services.coin_delete(coin=coin)
    client.force_login(collector)
    assert client.get(reverse("coin-detail", kwargs={"coin_id": coin.pk})).status_code == 404
    assert coin.pk not in [c.pk for c in client.get(reverse("coin-list")).context["page"].object_list]
    assert api.get(f"/api/coins/{coin.pk}/").status_code == 404
    assert coin.pk not in [row["id"] for row in api.get("/api/coins/").json()["results"]]
    assert api.delete(f"/api/coins/{coin.pk}/").status_code == 404


def test_curators_see_deleted_coins_in_the_admin(client, curator, corrected_coin):
    services.coin_delete(coin=corrected_coin)
    client.force_login(curator)
    changelist = reverse("admin:predictions_coin_changelist")
    deleted = client.get(changelist + "?state=deleted")
    assert [coin.pk for coin in deleted.context["cl"].result_list] == [corrected_coin.pk]
    assert "deleted by collector" in deleted.content.decode()
    assert corrected_coin.pk not in [coin.pk for coin in client.get(changelist).context["cl"].result_list]
    review = client.get(reverse("admin:predictions_coin_review", kwargs={"coin_id": corrected_coin.pk}))
    assert "Deleted by its collector" in review.content.decode()


def test_an_imported_label_is_kept_too(collector, settings, django_capture_on_commit_callbacks):
    coin = CoinFactory(owner=collector, source=Coin.Source.IMPORT, verified_year=1901)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.coin_delete(coin=coin) is True
    assert labelled_coins().filter(pk=coin.pk).exists()
    assert len(files_under(settings.MEDIA_ROOT)) == 2


def test_a_coin_with_a_decision_but_no_label_keeps_its_audit_and_loses_its_photos(
    collector, curator, settings, django_capture_on_commit_callbacks
):
    # given a coin a curator excluded from training (photos unusable): a decision, no label
    coin = CoinFactory(owner=collector, status=Coin.Status.PREDICTED)
    services.coin_correct(coin=coin, curator=curator, exclude=True)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.coin_delete(coin=coin) is True

    coin.refresh_from_db()
    assert coin.deleted_at is not None and Correction.objects.filter(coin=coin).count() == 1
    assert not coin.front_image and not coin.back_image
    assert files_under(settings.MEDIA_ROOT) == set()


def test_a_coin_with_nothing_to_keep_is_deleted_with_its_photos(
    collector, settings, django_capture_on_commit_callbacks
):
    coin = CoinFactory(owner=collector)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.coin_delete(coin=coin) is False
    assert not Coin.objects.filter(pk=coin.pk).exists()
    assert files_under(settings.MEDIA_ROOT) == set()


@pytest.fixture
def hidden_without_photos(collector, curator, django_capture_on_commit_callbacks) -> Coin:
    """A predicted coin a curator excluded, then its owner deleted: hidden, its photo names empty."""
    coin = CoinFactory(owner=collector, status=Coin.Status.PREDICTED)
    services.coin_correct(coin=coin, curator=curator, exclude=True)
    with django_capture_on_commit_callbacks(execute=True):
        services.coin_delete(coin=coin)
    coin.refresh_from_db()
    assert not coin.front_image.name
    return coin


@pytest.mark.parametrize("query", ["", "?size=thumb"])
def test_the_photo_of_a_coin_hidden_without_photos_is_a_404_not_a_500(client, curator, hidden_without_photos, query):
    client.force_login(curator)  # curators may see hidden coins' photos; there are none left

    response = client.get(reverse("coin-image", args=[hidden_without_photos.pk, "front"]) + query)

    assert response.status_code == 404


def test_re_scoring_skips_a_coin_hidden_without_photos_and_scores_the_others(
    production_model, collector, hidden_without_photos
):
    # given a chunk holding the hidden coin and a coin with photos
    other = CoinFactory(owner=collector, status=Coin.Status.PREDICTED)

    # when the chunk is scored, then it does not fail: the other coin gets its prediction, the hidden one none
    assert coins_rescore_now(coin_ids=[hidden_without_photos.pk, other.pk]) == 1
    assert other.predictions.count() == 1 and hidden_without_photos.predictions.count() == 0
    assert inference.coin_predict(coin_id=hidden_without_photos.pk, force=True) is None
