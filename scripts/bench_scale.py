"""make bench-scale: the curators' desk, the owners' pages and the housekeeping at N coins (issue 24; default 1M).

Creates a PostgreSQL database of its own (`coinsite_bench_scale`, on DATABASE_URL's server or 127.0.0.1:5432),
migrates it and seeds it with bulk SQL (INSERT ... SELECT FROM generate_series, no ORM rows): 10,000 collectors,
N coins over the last 52 weeks, 5 % of them verified by a curator, three model versions (the newest in Production)
and 1.07 predictions per coin (every 14th coin re-scored by a newer version), the coins' queue figures filled by
migration predictions 0011's own SQL, and 4 photo files per coin on disk (empty files: the sweep lists names and
never reads them), `--orphans` of them named by no coin. Then, warm (each page requested once before it is timed),
through Django's test client signed in as a curator or a model owner: each page of the issue's table, its server time
(median of `--views`), query count and RSS growth; the curators' decision (POST and the next coin it claims); the
monitoring figures' background refresh; the orphan sweep (time and peak RSS growth). Drops the database at the end
(`--keep` leaves it). The last line:

    scale: coins=... worst_page_ms=... worst_page=... desk_decision_ms=... monitoring_ms=... sweep_s=... sweep_rss_mb=...

    python scripts/bench_scale.py [--coins 1000000] [--views 5] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VAR = ROOT / "var" / "bench-scale"
DB_NAME = "coinsite_bench_scale"
SERVER = "postgres://postgres@127.0.0.1:5432"
COLLECTORS = 10_000
PAGE_TARGET_MS = 300.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_reset() -> None:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux: /proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def database_create(server: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def database_drop(server: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def setup_django(server: str, *, var: Path = VAR) -> None:
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    os.environ["COINSITE_VAR_DIR"] = str(var)
    os.environ["DATABASE_URL"] = f"{server}/{DB_NAME}"
    os.environ.pop("CELERY_BROKER_URL", None)  # tasks in-process: nothing is enqueued anywhere
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coinsite.settings")
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)


def seed(coins: int) -> dict:
    """Bulk SQL rows; returns the ids the timings need."""
    from django.contrib.auth.hashers import make_password
    from django.db import connection
    from django.utils import timezone

    from predictions.roles import user_add_role
    from registry.models import ModelVersion, Promotion
    from training.models import DatasetVersion, TrainingRun

    with connection.cursor() as cursor:
        password = make_password("x")
        cursor.execute(
            """INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,
                                      is_active, date_joined)
               SELECT %s, false, 'collector' || i, '', '', '', false, true, now() FROM generate_series(1, %s) AS i""",
            [password, COLLECTORS],
        )
    from django.contrib.auth import get_user_model

    users = get_user_model()
    curator = users.objects.create_user("bench-curator", password="x", is_staff=True)
    user_add_role(user=curator, role="curator")
    owner = users.objects.create_user("bench-owner", password="x", is_staff=True)
    user_add_role(user=owner, role="model_owner")
    first_user = users.objects.filter(username="collector1").values_list("pk", flat=True).get()

    dataset = DatasetVersion.objects.create(content_hash="c" * 64, manifest=[], coin_count=0)
    now = timezone.now()
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
        Promotion.objects.filter(pk=move.pk).update(created_at=now - timezone.timedelta(weeks=52 - 20 * index))
    v1, v2, v3 = (v.pk for v in versions)
    with connection.cursor() as cursor:
        # coins: owner i % 10,000; created over 52 weeks, oldest first; every 20th verified a day later
        cursor.execute(
            f"""INSERT INTO predictions_coin (owner_id, front_image, back_image, front_thumbnail, back_thumbnail,
                    front_sha256, back_sha256, source, status, status_detail, verified_year, verified_at,
                    excluded_from_training, not_a_coin, notes, created_at, updated_at, pred_rejected, pred_no_year)
                SELECT {first_user} + i % {COLLECTORS},
                       'coins/' || ({first_user} + i % {COLLECTORS}) || '/' || i || 'f.jpg',
                       'coins/' || ({first_user} + i % {COLLECTORS}) || '/' || i || 'b.jpg',
                       'coins/' || ({first_user} + i % {COLLECTORS}) || '/thumbs/' || i || 'f.jpg',
                       'coins/' || ({first_user} + i % {COLLECTORS}) || '/thumbs/' || i || 'b.jpg',
                       md5(i::text) || md5((i + 1)::text), md5((-i)::text) || md5((-i - 1)::text),
                       'upload', 'predicted', '',
                       CASE WHEN i % 20 = 0 THEN 1800 + i % 220 END,
                       CASE WHEN i % 20 = 0 THEN now() - interval '52 weeks' * (1 - i::float / {coins}) + interval '1 day'
                       END,
                       false, false, '', now() - interval '52 weeks' * (1 - i::float / {coins}), now(), '', false
                FROM generate_series(1, {coins}) AS i""",
        )
        # one prediction per coin by the version serving when it came (v1, v2, v3 over the year); 3 % rejected
        cursor.execute(
            f"""INSERT INTO predictions_prediction (coin_id, year, interval_low, interval_high, model_version_id,
                    latency_ms, created_at, interval_level, alternatives, coin_score, read_score, rejected,
                    second_look, uncertainty)
                SELECT id, 1800 + (id * 7) % 220, 1800 + (id * 7) % 220 - 1 - id % 6, 1800 + (id * 7) % 220 + 1 + id % 5,
                       CASE WHEN created_at < now() - interval '32 weeks' THEN {v1}
                            WHEN created_at < now() - interval '12 weeks' THEN {v2} ELSE {v3} END,
                       9.0, created_at, 0.8, '[]'::jsonb, 0.99, 0.7,
                       CASE WHEN id % 33 = 0 THEN 'not_a_coin' WHEN id % 37 = 0 THEN 'unreadable' ELSE '' END,
                       '', ((id * 7919) % 1000) / 300.0
                FROM predictions_coin"""
        )
        # every 14th coin re-scored by Production since (7 % more predictions: 1.07 per coin)
        cursor.execute(
            f"""INSERT INTO predictions_prediction (coin_id, year, interval_low, interval_high, model_version_id,
                    latency_ms, created_at, interval_level, alternatives, coin_score, read_score, rejected,
                    second_look, uncertainty)
                SELECT id, 1800 + (id * 11) % 220, 1800 + (id * 11) % 220 - 2, 1800 + (id * 11) % 220 + 2, {v3},
                       9.0, now() - interval '1 day', 0.8, '[]'::jsonb, 0.99, 0.7, '', '', ((id * 104729) % 1000) / 300.0
                FROM predictions_coin WHERE id % 14 = 0"""
        )
        from importlib import import_module

        cursor.execute(import_module("predictions.migrations.0011_coin_queue_figures").FILL_SQL)
        cursor.execute("ANALYZE")
    some = list(connection.cursor().execute("SELECT id FROM predictions_coin ORDER BY id LIMIT 1").fetchone())
    return {"curator": curator, "owner": owner, "first_coin": some[0], "first_user": first_user}


def reused() -> dict:
    """The ids seed() returned, read back from a database it seeded before."""
    from django.contrib.auth import get_user_model

    users = get_user_model()
    return {
        "curator": users.objects.get(username="bench-curator"),
        "owner": users.objects.get(username="bench-owner"),
        "first_coin": Coin_first_id(),
        "first_user": users.objects.get(username="collector1").pk,
    }


def Coin_first_id() -> int:  # noqa: N802
    from predictions.models import Coin

    return Coin.objects.order_by("id").values_list("id", flat=True).first()


def files_create(coins: int, first_user: int, orphans: int) -> int:
    """4 empty files per coin where the rows say (and `orphans` more, named by no row, aged past the grace)."""
    from django.db import connection

    media = Path(os.environ["COINSITE_VAR_DIR"]) / "media"
    made = 0
    old = time.time() - 7 * 86400
    for owner in range(first_user, first_user + COLLECTORS):
        (media / "coins" / str(owner) / "thumbs").mkdir(parents=True, exist_ok=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT front_image, back_image, front_thumbnail, back_thumbnail FROM predictions_coin")
        while rows := cursor.fetchmany(20_000):
            for row in rows:
                for name in row:
                    os.mknod(f"{media}/{name}")
                    made += 1
    for index in range(orphans):
        path = media / "coins" / str(first_user + index % COLLECTORS) / f"orphan{index}.jpg"
        os.mknod(path)
        os.utime(path, (old, old))
    return made + orphans


def timed_get(client, url: str, views: int, *, method: str = "get", data=None) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    getattr(client, method)(url, data or {})  # warm: templates, caches, the database's buffers
    times = []
    peak_reset()
    before = rss_mb()
    for _ in range(views):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = getattr(client, method)(url, data or {})
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code in (200, 302), (url, response.status_code)
    return {
        "ms": statistics.median(times),
        "queries": len(queries),
        "rss_mb": max(0.0, peak_mb() - before),
        "status": response.status_code,
        "response": response,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=1_000_000)
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--orphans", type=int, default=1000)
    parser.add_argument("--no-files", action="store_true", help="skip the photo files (and the sweep)")
    parser.add_argument("--keep", action="store_true", help="leave the database (and var/bench-scale) behind")
    parser.add_argument(
        "--reuse", action="store_true", help="time the pages of a database seeded before (--keep), without the sweep"
    )
    args = parser.parse_args()
    server = os.environ.get("BENCH_DATABASE_SERVER", SERVER)
    if args.reuse:
        args.keep = args.no_files = True
    else:
        database_create(server)
    try:
        return run(args)
    finally:
        if not args.keep:
            database_drop(server)
            shutil.rmtree(VAR, ignore_errors=True)


def run(args) -> int:
    setup_django(
        os.environ.get("BENCH_DATABASE_SERVER", SERVER), var=VAR.with_name("bench-scale-reuse") if args.reuse else VAR
    )
    from django.test import Client
    from django.urls import reverse

    from predictions.models import Coin, Prediction

    started = time.perf_counter()
    ids = reused() if args.reuse else seed(args.coins)
    args.coins = Coin.objects.count()
    print(
        f"seeded {Coin.objects.count()} coins, {Prediction.objects.count()} predictions, {COLLECTORS} collectors "
        f"in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    files = 0
    if not args.no_files:
        started = time.perf_counter()
        files = files_create(args.coins, ids["first_user"], args.orphans)
        print(f"created {files} photo files in {time.perf_counter() - started:.0f} s", flush=True)

    results: dict[str, dict] = {}
    curator = Client()
    curator.force_login(ids["curator"])
    owner = Client()
    owner.force_login(ids["owner"])
    changelist = reverse("admin:predictions_coin_changelist")
    start = reverse("admin:predictions_coin_review_start")

    def page(label: str, client, url: str, **kwargs) -> None:
        results[label] = timed_get(client, url, args.views, **kwargs)
        row = results[label]
        print(f"{label:<44} {row['ms']:8.1f} ms {row['queries']:3d} queries  +{row['rss_mb']:.0f} MB RSS", flush=True)

    page("review start /admin/predictions/coin/review/", curator, start)
    coin_url = results["review start /admin/predictions/coin/review/"]["response"].url
    page("a desk page (GET)", curator, coin_url)
    page("coin changelist, default queue order", curator, changelist)
    page("changelist, oldest first, page 2", curator, f"{changelist}?order=oldest&p=2")
    page("changelist, decade 1870s", curator, f"{changelist}?decade=1870")
    page("changelist search by id", curator, f"{changelist}?q=%23{ids['first_coin'] + 12345 % args.coins}")
    page("changelist search by username", curator, f"{changelist}?q=collector77")
    page("prediction list", curator, reverse("admin:predictions_prediction_changelist"))
    page("prediction list search by coin id", curator, reverse("admin:predictions_prediction_changelist") + "?q=42")

    # one decision: the POST (decide, claim the next coin, redirect) and the next coin's page, each timed once warm
    decisions = []
    for _ in range(args.views + 1):
        coin_url = curator.get(start).url
        coin_id = int(coin_url.split("/")[-3])
        assert Coin.objects.filter(pk=coin_id, pred_no_year=False).exists(), coin_id  # the queue's read coins first
        started = time.perf_counter()
        response = curator.post(coin_url, {"year": ""})  # an empty year confirms the model's
        decided = time.perf_counter()
        curator.get(response.url)
        decisions.append(((decided - started) * 1000, (time.perf_counter() - decided) * 1000))
        assert response.status_code == 302, response.status_code
    decision_ms = statistics.median(post for post, _next in decisions[1:])
    next_ms = statistics.median(nxt for _post, nxt in decisions[1:])
    print(f"{'one decision (POST) / the next coin (GET)':<44} {decision_ms:8.1f} ms / {next_ms:.1f} ms", flush=True)

    page("movers page", owner, reverse("admin:registry_modelversion_movers"))
    page("rescore page GET", owner, reverse("admin:registry_modelversion_rescore"))
    page("dataset list", owner, reverse("admin:training_datasetversion_changelist"))
    page("training run list", owner, reverse("admin:training_trainingrun_changelist"))

    sweep_s = sweep_rss = 0.0
    if not args.no_files:
        from predictions.sweeps import photo_orphans_sweep

        peak_reset()
        before = rss_mb()
        started = time.perf_counter()
        seen, removed = photo_orphans_sweep()
        sweep_s = time.perf_counter() - started
        sweep_rss = max(0.0, peak_mb() - before)
        print(f"orphan sweep: {seen} files seen, {removed} removed in {sweep_s:.1f} s, +{sweep_rss:.0f} MB peak RSS")

    from training.services.monitoring_snapshot import monitoring_snapshot_refresh

    for weeks in (12, 52):
        started = time.perf_counter()
        monitoring_snapshot_refresh(weeks=weeks)
        print(f"monitoring refresh ({weeks} weeks, background): {time.perf_counter() - started:.1f} s", flush=True)
    monitoring = reverse("admin:registry_modelversion_monitoring")
    page("monitoring (12 weeks)", owner, f"{monitoring}?weeks=12")
    page("monitoring (52 weeks)", owner, f"{monitoring}?weeks=52")
    worst_label, worst = max(results.items(), key=lambda item: item[1]["ms"])
    slow = [label for label, row in results.items() if row["ms"] >= PAGE_TARGET_MS or row["queries"] > 20]
    print(f"pages over {PAGE_TARGET_MS:.0f} ms or 20 queries: {', '.join(slow) or 'none'}")
    monitoring_ms = max(results["monitoring (52 weeks)"]["ms"], results["movers page"]["ms"])
    print(
        f"scale: coins={args.coins} worst_page_ms={worst['ms']:.0f} worst_page={worst_label.split()[0]}"
        f"{'_' + '_'.join(worst_label.split()[1:3]) if len(worst_label.split()) > 1 else ''} "
        f"desk_decision_ms={decision_ms + next_ms:.0f} monitoring_ms={monitoring_ms:.0f} sweep_s={sweep_s:.1f} "
        f"sweep_rss_mb={sweep_rss:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
