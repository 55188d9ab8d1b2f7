"""make bench-monitoring: the owners' monitoring page's server time with 10,000 verified coins (issue 21: < 300 ms).

A fresh SQLite database in var/bench-monitoring (or DATABASE_URL's): 10,000 uploaded coins over the last 12 weeks,
each predicted by one of three versions and verified by a curator a day later (a tenth rejected as not a coin), and
the versions' training set; every coin names the same two small JPEGs (the refresh measures each sampled coin's
photos all the same). Then, as deployed: the background refresh (what beat or the embedded default's thread runs)
computes the figures once, and the page is requested `--views` times by a signed-in model owner through Django's
test client (the whole request: middleware, admin chrome, template). Prints the refresh's time, the page's median and
worst server time and its query count, and ends with a `bench: key=value ...` line.

    python scripts/bench_monitoring.py [--coins 10000] [--views 20]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VAR = ROOT / "var" / "bench-monitoring"
TARGET_MS = 300.0


def setup_django() -> None:
    shutil.rmtree(VAR, ignore_errors=True)
    VAR.mkdir(parents=True)
    os.environ["COINSITE_VAR_DIR"] = str(VAR)
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coinsite.settings")
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)


def jpeg(level: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(level)
    pixels = np.clip(rng.normal(level, 20, (320, 320, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def populate(coins: int) -> None:
    """Bulk rows: users, three versions (the newest in Production), their promotions, a training set, and `coins`
    coins predicted by the version serving that week and verified a day after."""
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from predictions.models import Coin, Prediction
    from predictions.roles import user_add_role
    from registry.models import ModelVersion, Promotion
    from training.models import DatasetVersion, TrainingRun

    user_model = get_user_model()
    collector = user_model.objects.create_user("bench-collector", password="x")
    owner = user_model.objects.create_user("bench-owner", password="x", is_staff=True)
    user_add_role(user=owner, role="model_owner")
    front = default_storage.save("coins/bench/front.jpg", ContentFile(jpeg(140)))
    back = default_storage.save("coins/bench/back.jpg", ContentFile(jpeg(120)))

    now = timezone.now()
    training = Coin.objects.bulk_create(
        Coin(
            owner=collector,
            front_image=front,
            back_image=back,
            front_sha256="a" * 64,
            back_sha256="b" * 64,
            source=Coin.Source.UPLOAD,
            status=Coin.Status.PREDICTED,
            verified_year=1800 + i % 200,
            verified_at=now - timedelta(weeks=20),
        )
        for i in range(2000)
    )
    dataset = DatasetVersion.objects.create(
        content_hash="c" * 64,
        manifest=[{"coin_id": coin.pk, "year": coin.verified_year} for coin in training],
        coin_count=len(training),
    )
    versions = []
    for number in (1, 2, 3):
        run = TrainingRun.objects.create(
            status=TrainingRun.Status.SUCCEEDED, dataset_version=dataset, metrics={"mae": 3.0 - number / 2}
        )
        versions.append(
            ModelVersion.objects.create(
                name="coin-year",
                version=number,
                run_id=f"bench{number}",
                training_run=run,
                metrics={"mae": 3.0 - number / 2},
                is_production=number == 3,
                aliases=["production"] if number == 3 else [],
            )
        )
    for index, version in enumerate(versions):
        move = Promotion.objects.create(
            name="coin-year",
            from_version=versions[index - 1] if index else None,
            to_version=version,
            action="initial" if index == 0 else "promote",
            actor=owner,
        )
        Promotion.objects.filter(pk=move.pk).update(created_at=now - timedelta(weeks=12 - 4 * index))

    span = timedelta(weeks=12).total_seconds()
    batch = []
    for i in range(coins):
        at = now - timedelta(seconds=span * (1 - (i + 0.5) / coins))
        version = versions[min(2, int(3 * i / coins))]
        truth = 1800 + (i * 7) % 220
        batch.append((at, version, truth, i % 10 == 0))
    served = Coin.objects.bulk_create(
        Coin(
            owner=collector,
            front_image=front,
            back_image=back,
            front_sha256="a" * 64,
            back_sha256="b" * 64,
            source=Coin.Source.UPLOAD,
            status=Coin.Status.PREDICTED,
            verified_year=truth,
            verified_at=at + timedelta(days=1),
        )
        for at, version, truth, rejected in batch
    )
    predictions = Prediction.objects.bulk_create(
        Prediction(
            coin=coin,
            model_version=version,
            year=truth + (i % 5) - 2,
            interval_low=truth - 4,
            interval_high=truth + 4,
            latency_ms=9.0,
            rejected="not_a_coin" if rejected else "",
        )
        for i, (coin, (at, version, truth, rejected)) in enumerate(zip(served, batch, strict=True))
    )
    # created_at is auto_now_add: set each row's time (one UPDATE per distinct day keeps this quick)
    by_day: dict = {}
    for prediction, (at, *_rest) in zip(predictions, batch, strict=True):
        by_day.setdefault(at.replace(hour=12, minute=0, second=0, microsecond=0), []).append(prediction.pk)
    for day, ids in by_day.items():
        Prediction.objects.filter(pk__in=ids).update(created_at=day)
        Coin.objects.filter(predictions__pk__in=ids).update(created_at=day)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=10_000)
    parser.add_argument("--views", type=int, default=20)
    args = parser.parse_args()
    setup_django()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from predictions.models import Coin
    from training.services.monitoring_snapshot import monitoring_snapshot_refresh

    started = time.perf_counter()
    populate(args.coins)
    print(
        f"populated {args.coins} verified coins in {time.perf_counter() - started:.1f} s "
        f"({Coin.objects.filter(verified_year__isnull=False).count()} verified in all)"
    )

    started = time.perf_counter()
    snapshot = monitoring_snapshot_refresh(weeks=12)
    refresh_s = time.perf_counter() - started
    report_weeks = len(snapshot.report["weeks"])
    print(f"background refresh: {refresh_s:.2f} s ({snapshot.report['photos_pending']} photos left for the next)")

    # what the page did in the request before, even with every photo already measured: the report and its figures
    from training.services.monitoring import monitoring_report
    from training.services.monitoring_figures import monitoring_figures_draw

    started = time.perf_counter()
    monitoring_figures_draw(monitoring_report(weeks=12))
    inline_s = time.perf_counter() - started
    print(f"the same figures computed in a request (photos already measured): {inline_s:.2f} s")

    client = Client()
    client.force_login(type(Coin.objects.first().owner).objects.get(username="bench-owner"))
    url = reverse("admin:registry_modelversion_monitoring")
    times = []
    for _ in range(args.views):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        assert b"data-mt-live-mae" in response.content and b"Figures computed" in response.content
    median, worst = statistics.median(times), max(times)
    print(
        f"monitoring page ({report_weeks} weeks, {args.views} views): median {median:.1f} ms, worst {worst:.1f} ms, "
        f"{len(queries)} queries, {len(response.content) / 1024:.0f} KB"
    )
    print(
        f"bench: coins={args.coins} page_median_ms={median:.1f} page_max_ms={worst:.1f} queries={len(queries)} "
        f"refresh_s={refresh_s:.2f} in_request_s={inline_s:.2f} target_ms={TARGET_MS:.0f} ok={median < TARGET_MS}"
    )
    return 0 if median < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
