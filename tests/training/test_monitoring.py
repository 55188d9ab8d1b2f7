"""The owners' monitoring page: live accuracy of each version on coins verified after it predicted them, rejections,
input drift of the photos served against the version's training photos, and which version served when."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from predictions.models import Prediction
from registry.models import Promotion
from tests.factories import CoinFactory, ModelVersionFactory
from training.models import CoinPhotoStats, DatasetVersion, TrainingRun
from training.services.monitoring import monitoring_report
from training.services.photo_stats import coin_photo_stats_measure, feature_drift, population_stability_index

pytestmark = pytest.mark.django_db

MONITORING = "admin:registry_modelversion_monitoring"


def photo(level: float, *, seed: int, size: int = 96) -> bytes:
    """A JPEG around grey `level` (0..255) with some texture, so every coin's statistics differ a little."""
    rng = np.random.default_rng(seed)
    base = np.full((size, size, 3), level, dtype=np.float32) + rng.normal(0, 18, (size, size, 1))
    tint = np.array([1.08, 1.0, 0.88], dtype=np.float32)  # a copper-ish coin
    pixels = np.clip(base * tint, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def coin_with(level: float, *, seed: int, owner, thumbnail: bool = False, **fields):
    front, back = photo(level, seed=2 * seed), photo(level * 0.9, seed=2 * seed + 1)
    extra = {}
    if thumbnail:
        extra = {
            "front_thumbnail": ContentFile(photo(level, seed=2 * seed, size=48), name="t.jpg"),
            "back_thumbnail": ContentFile(photo(level * 0.9, seed=2 * seed + 1, size=48), name="t.jpg"),
        }
    return CoinFactory(
        owner=owner,
        front_image=ContentFile(front, name="front.jpg"),
        back_image=ContentFile(back, name="back.jpg"),
        **extra,
        **fields,
    )


def predict(coin, version, *, year: int, at, half_width: int = 3, rejected: str = "") -> Prediction:
    prediction = Prediction.objects.create(
        coin=coin,
        model_version=version,
        year=year,
        interval_low=year - half_width,
        interval_high=year + half_width,
        latency_ms=5.0,
        rejected=rejected,
    )
    Prediction.objects.filter(pk=prediction.pk).update(created_at=at)
    return prediction


def verify(coin, year: int, at) -> None:
    type(coin).objects.filter(pk=coin.pk).update(verified_year=year, verified_at=at)


@pytest.fixture
def owner_client(client, model_owner):
    client.force_login(model_owner)
    return client


def test_only_model_owners_see_the_monitoring_page(client, curator, collector, model_owner):
    url = reverse(MONITORING)
    client.force_login(curator)
    assert client.get(url).status_code == 403
    client.force_login(collector)
    assert client.get(url).status_code == 302  # not staff: the admin's login
    client.force_login(model_owner)
    assert client.get(url).status_code == 200


def test_monitoring_page_shows_each_versions_live_mae_from_coins_verified_after_the_prediction(
    owner_client, collector, settings
):
    settings.MLFLOW_MODEL_NAME = "coin-year"
    now = timezone.now()
    three_weeks_ago, last_week = now - timedelta(weeks=3), now - timedelta(weeks=1)
    v1 = ModelVersionFactory(version=1, metrics={"mae": 2.5})
    v2 = ModelVersionFactory(version=2, metrics={"mae": 1.5}, is_production=True, aliases=["production"])
    Promotion.objects.filter(pk=Promotion.objects.create(to_version=v1, action="initial").pk).update(
        created_at=three_weeks_ago - timedelta(days=1)
    )
    Promotion.objects.filter(pk=Promotion.objects.create(from_version=v1, to_version=v2, action="promote").pk).update(
        created_at=last_week - timedelta(days=1)
    )

    # v1, three weeks ago: errors 2, 0, 6, 4 on coins verified a day later -> MAE 3.0, 1 of 4 exact, 2 of 4 within ±3
    for seed, (truth, error) in enumerate([(1850, 2), (1900, 0), (1920, 6), (1875, 4)]):
        coin = coin_with(140, seed=seed, owner=collector)
        predict(coin, v1, year=truth + error, at=three_weeks_ago)
        verify(coin, truth, three_weeks_ago + timedelta(days=1))
    # not live accuracy: a coin verified BEFORE v1 predicted it (a demo or training coin), off by 50 years
    known = coin_with(140, seed=10, owner=collector)
    verify(known, 1800, three_weeks_ago - timedelta(days=2))
    predict(known, v1, year=1850, at=three_weeks_ago)
    # a rejected photo: no year was given, so it counts in the rejection rate, not in the MAE
    rejected = coin_with(140, seed=11, owner=collector)
    predict(rejected, v1, year=1999, at=three_weeks_ago, rejected="not_a_coin")
    verify(rejected, 1901, three_weeks_ago + timedelta(days=1))
    # v2, last week: errors 1 and 1 -> MAE 1.0; a coin nobody verified yet does not count
    for seed, truth in ((20, 1960), (21, 1970)):
        coin = coin_with(140, seed=seed, owner=collector)
        predict(coin, v2, year=truth + 1, at=last_week)
        verify(coin, truth, last_week + timedelta(hours=5))
    predict(coin_with(140, seed=22, owner=collector), v2, year=1990, at=last_week)

    report = monitoring_report()
    live1, live2 = report.get(1).overall, report.get(2).overall
    print(
        f"\nv1 live: MAE {live1.mae:.2f} on {live1.verified} coins, exact {live1.exact_rate:.0%}, "
        f"in interval {live1.coverage:.0%}, rejected {live1.rejection_rate:.0%} of {live1.predictions}"
        f"\nv2 live: MAE {live2.mae:.2f} on {live2.verified} coins, exact {live2.exact_rate:.0%}, "
        f"in interval {live2.coverage:.0%}, rejected {live2.rejection_rate:.0%} of {live2.predictions}"
    )
    assert (live1.mae, live1.verified, live1.exact_rate, live1.coverage) == (3.0, 4, 0.25, 0.5)
    assert (live1.predictions, live1.rejected) == (6, 1)
    assert (live2.mae, live2.verified, live2.exact_rate, live2.coverage) == (1.0, 2, 0.0, 1.0)
    assert (live2.predictions, live2.rejected) == (3, 0)
    assert [week.mae for week in report.get(1).weeks] == [3.0]
    assert [(period.version, period.action) for period in report.serving] == [(1, "initial"), (2, "promote")]

    page = owner_client.get(reverse(MONITORING)).content.decode()
    assert 'data-mt-live-mae="v1"><strong>3.00</strong>' in page
    assert 'data-mt-live-mae="v2"><strong>1.00</strong>' in page
    assert "Which version served when" in page and page.count("data:image/png;base64,") == 2
    assert "v2 by week" in page  # Production's weeks below the figures
    assert "v1 by week" in owner_client.get(reverse(MONITORING) + "?version=1&weeks=26").content.decode()


def test_darker_photos_served_in_a_recent_week_show_as_input_drift(owner_client, collector, settings):
    settings.MLFLOW_MODEL_NAME = "coin-year"
    settings.MONITORING_STATS_SECONDS = 60  # all 100 coins measured on the first visit, however busy the machine
    settings.MONITORING_REFRESH_STATS_SECONDS = 60
    rng = np.random.default_rng(5)
    training = [coin_with(rng.normal(150, 20), seed=100 + i, owner=collector) for i in range(40)]
    dataset = DatasetVersion.objects.create(
        content_hash="d" * 64,
        manifest=[{"coin_id": coin.pk, "year": 1900} for coin in training],
        coin_count=len(training),
    )
    run = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, dataset_version=dataset)
    version = ModelVersionFactory(version=1, training_run=run, is_production=True)
    now = timezone.now()
    # two weeks ago: photos like the training ones; this week: the same kind of coins, photographed in a dark room
    for i in range(30):
        predict(
            coin_with(rng.normal(150, 20), seed=200 + i, owner=collector),
            version,
            year=1900,
            at=now - timedelta(weeks=2),
        )
        dark = coin_with(rng.normal(55, 12), seed=300 + i, owner=collector, thumbnail=i % 2 == 0)
        predict(dark, version, year=1900, at=now)

    report = monitoring_report()

    drift = report.get(1).drift
    assert len(drift) == 2
    usual, darker = drift
    for week in drift:
        worst = week.worst
        print(
            f"\nweek of {week.week}: drift |SMD| {week.score:.2f} ({worst.feature} {worst.serving_mean:.3f} served vs "
            f"{worst.training_mean:.3f} training), brightness PSI "
            f"{next(f.psi for f in week.features if f.feature == 'brightness'):.2f}, {week.sampled} of {week.served} photos "
            f"(noise level {week.noise:.2f}: {week.level})"
        )
    assert usual.sampled == darker.sampled == 30 and report.get(1).training_sampled == 40
    assert darker.score > 3 * usual.score and darker.score > 2.0 and usual.score < 0.5
    assert darker.worst.feature in ("brightness", "red", "green", "blue")
    assert darker.level == "large" and usual.level == "none"
    assert CoinPhotoStats.objects.count() == 100  # measured once ...
    monitoring_report()
    assert CoinPhotoStats.objects.count() == 100  # ... and read afterwards

    page = owner_client.get(reverse(MONITORING)).content.decode()
    assert (
        f'data-mt-drift="{darker.week:%Y-%m-%d}"><span class="mt-badge mt-badge--bad">{darker.score:.2f}</span>' in page
    )
    assert f'data-mt-drift="{usual.week:%Y-%m-%d}">{usual.score:.2f}</td>' in page


def test_photo_statistics_from_a_thumbnail_match_those_from_the_photo(collector):
    with_thumbnail = coin_with(120, seed=7, owner=collector, thumbnail=True)
    without = CoinFactory(
        owner=collector,
        front_image=with_thumbnail.front_image.name,
        back_image=with_thumbnail.back_image.name,
        front_sha256=with_thumbnail.front_sha256,
        back_sha256=with_thumbnail.back_sha256,
    )
    from_thumbnail, from_photo = coin_photo_stats_measure(with_thumbnail), coin_photo_stats_measure(without)
    assert from_thumbnail.source == "thumbnail" and from_photo.source == "photo"
    assert abs(from_thumbnail.brightness - from_photo.brightness) < 0.03


def test_a_photo_that_cannot_be_read_is_recorded_once_without_numbers(collector):
    coin = CoinFactory(owner=collector, front_image=ContentFile(b"not a photo", name="front.jpg"))
    stats = coin_photo_stats_measure(coin)
    assert stats.brightness is None and stats.error


def test_drift_distances_are_zero_for_the_same_photos_and_grow_with_the_shift():
    rng = np.random.default_rng(0)
    training = rng.normal(0.5, 0.1, 400)
    same = feature_drift("brightness", rng.normal(0.5, 0.1, 200), training)
    shifted = feature_drift("brightness", rng.normal(0.3, 0.1, 200), training)
    assert abs(same.smd) < 0.25 and same.psi < 0.1
    assert shifted.smd < -1.5 and shifted.psi > 0.25
    assert population_stability_index(training, training) == pytest.approx(0.0, abs=1e-9)


def test_monitoring_page_renders_with_no_versions_at_all(owner_client):
    response = owner_client.get(reverse(MONITORING))
    assert response.status_code == 200
    assert "No version made predictions" in response.content.decode()


def test_model_version_pages_link_to_the_monitoring_page(owner_client):
    version = ModelVersionFactory(version=3)
    assert reverse(MONITORING) in owner_client.get(reverse("admin:registry_modelversion_changelist")).content.decode()
    detail = owner_client.get(reverse("admin:registry_modelversion_change", args=[version.pk])).content.decode()
    assert f"{reverse(MONITORING)}?version=3" in detail


def test_a_first_visit_measures_photos_only_within_its_time_budget(owner_client, collector, settings):
    settings.MLFLOW_MODEL_NAME = "coin-year"
    settings.MONITORING_STATS_SECONDS = 0  # nothing may be measured by this report ...
    settings.MONITORING_REFRESH_STATS_SECONDS = 0  # ... nor by the page's background refresh
    version = ModelVersionFactory(version=1, is_production=True)
    for i in range(3):
        predict(coin_with(120, seed=400 + i, owner=collector), version, year=1900, at=timezone.now())

    report = monitoring_report()

    assert report.photos_pending == 3 and not CoinPhotoStats.objects.exists()
    assert report.get(1).drift[0].score is None
    page = owner_client.get(reverse(MONITORING)).content.decode()
    assert "3 photos not measured yet" in page
