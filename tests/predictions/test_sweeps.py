"""The orphan sweep and the embedded default's housekeeping timer: files no row names go, after a grace period; coins
left pending are asked for again."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from predictions import housekeeping, sweeps
from predictions.models import Coin
from tests.factories import CoinFactory, jpeg_bytes

pytestmark = pytest.mark.django_db


def age(settings, name: str, seconds: float) -> None:
    path = Path(settings.MEDIA_ROOT) / name
    then = time.time() - seconds
    os.utime(path, (then, then))


def stored(settings) -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def test_sweep_removes_old_files_no_row_names_and_keeps_young_ones_and_every_named_one(settings):
    # given a coin with photos and thumbnails, an hour-old orphan photo and thumbnail, and an orphan just written
    coin = CoinFactory(front_thumbnail=ContentFile(jpeg_bytes(seed=3), name="t.jpg"))
    old_orphan = default_storage.save("coins/99/orphan.jpg", ContentFile(jpeg_bytes(seed=5)))
    old_thumb = default_storage.save("coins/99/thumbs/orphan.jpg", ContentFile(jpeg_bytes(seed=6)))
    young_orphan = default_storage.save("coins/99/in-flight.jpg", ContentFile(jpeg_bytes(seed=7)))
    for name in (old_orphan, old_thumb, coin.front_image.name, coin.back_image.name, coin.front_thumbnail.name):
        age(settings, name, 3601)

    # when the sweep runs with the default grace period of an hour
    seen, removed = sweeps.photo_orphans_sweep()

    # then only the old orphans are gone
    assert (seen, removed) == (6, 2)
    assert stored(settings) == {coin.front_image.name, coin.back_image.name, coin.front_thumbnail.name, young_orphan}


def test_sweep_command_reports_and_requeues_coins_left_pending(settings, monkeypatch):
    coin = CoinFactory()
    Coin.objects.filter(pk=coin.pk).update(created_at=coin.created_at.replace(year=2020))
    asked: list[int] = []
    monkeypatch.setattr("predictions.enqueue.coin_predict", lambda **kw: asked.append(kw["coin_id"]))
    default_storage.save("coins/7/lost.jpg", ContentFile(jpeg_bytes()))

    from io import StringIO

    out = StringIO()
    call_command("sweep", "--grace-seconds", "0", stdout=out)

    assert asked == [coin.id]
    assert "3 photo file(s) seen, 1 without a coin removed, 1 pending coin(s) asked for again" in out.getvalue()


def test_the_timer_runs_the_sweeps_only_when_enabled(settings, monkeypatch):
    runs: list[object] = []
    monkeypatch.setattr(
        "predictions.sweeps.housekeeping_run", lambda **kwargs: runs.append("run") or sweeps.SweepResult(0, 0, 0)
    )
    monkeypatch.setattr(housekeeping, "FIRST_RUN_AFTER_SECONDS", 0.01)
    monkeypatch.setattr(housekeeping, "_started", type(housekeeping._started)())
    monkeypatch.setattr(housekeeping, "_jobs", [])  # the other apps' jobs (training's monitoring refresh) apart

    settings.COINSITE_HOUSEKEEPING_SECONDS = 0
    assert housekeeping.timer_start_if_enabled() is None  # off by default (tests, tools)
    settings.COINSITE_HOUSEKEEPING_SECONDS = 60
    thread = housekeeping.timer_start_if_enabled()
    assert thread is not None and thread.daemon
    assert housekeeping.timer_start_if_enabled() is None  # once per process
    deadline = time.monotonic() + 10
    while not runs and time.monotonic() < deadline:
        time.sleep(0.01)
    housekeeping.timer_stop()  # no thread outlives its test
    thread.join(timeout=5)
    assert runs == ["run"] and not thread.is_alive()


def test_the_orphan_sweep_runs_on_its_own_queue_not_the_inference_workers():
    from coinsite.celery import app

    route = app.amqp.router.route({}, "predictions.tasks.photo_orphans_sweep_task")
    assert route["queue"].name == "housekeeping"
    assert app.amqp.router.route({}, "predictions.tasks.coin_predict_task")["queue"].name == "inference"


@pytest.mark.django_db(transaction=True)
def test_sweep_never_deletes_the_files_of_an_upload_still_in_flight_past_the_grace_period(settings):
    """Issue 23's race: an upload stored its photos, then took longer than the grace period to commit its row."""
    import threading

    from django.db import connection

    from predictions import upload_guard
    from tests.factories import UserFactory

    owner = UserFactory()
    written, sweep_done = threading.Event(), threading.Event()
    names: list[str] = []

    def slow_upload() -> None:
        try:
            with upload_guard.owner_upload(owner.pk):  # what coin_create_checked holds around files and commit
                for side in ("front", "back"):
                    names.append(default_storage.save(f"coins/{owner.pk}/{side}.jpg", ContentFile(jpeg_bytes())))
                    age(settings, names[-1], 3601)  # written longer ago than the grace period
                written.set()
                assert sweep_done.wait(30)
                coin = CoinFactory(owner=owner)  # the row commits at last, naming the files written before
                Coin.objects.filter(pk=coin.pk).update(front_image=names[0], back_image=names[1])
        finally:
            connection.close()

    upload = threading.Thread(target=slow_upload)
    upload.start()
    assert written.wait(30)

    # when the sweep runs while the upload is between its file writes and its commit
    seen, removed = sweeps.photo_orphans_sweep()
    sweep_done.set()
    upload.join(30)

    # then it saw the files and left them, and the coin committed with both photos on disk
    assert (seen, removed) == (2, 0)
    coin = Coin.objects.get(owner=owner)
    assert {coin.front_image.name, coin.back_image.name} <= stored(settings)
    # and a file of that owner that nothing commits goes at the next sweep, the upload being over
    orphan = default_storage.save(f"coins/{owner.pk}/lost.jpg", ContentFile(jpeg_bytes(seed=9)))
    age(settings, orphan, 3601)
    assert sweeps.photo_orphans_sweep()[1] == 1


def test_each_tick_has_one_owner_among_the_processes(settings, monkeypatch):
    # given two timers sharing the cache (two gunicorn workers), and a pending coin's requeue counted
    runs: list[int] = []
    monkeypatch.setattr(
        "predictions.sweeps.housekeeping_run",
        lambda **kwargs: runs.append(kwargs["pending_after_seconds"]) or sweeps.SweepResult(0, 0, 0),
    )
    monkeypatch.setattr(housekeeping, "_jobs", [])
    settings.COINSITE_PENDING_REQUEUE_SECONDS = 45

    # when both tick in the same interval, then one runs the sweeps and the other does nothing
    assert housekeeping.tick_claim(60, owner="worker-a") is True
    assert housekeeping.tick_claim(60, owner="worker-b") is False
    cache.delete(housekeeping.TICK_KEY)
    assert [housekeeping.housekeeping_tick(60), housekeeping.housekeeping_tick(60)] == [True, False]
    assert runs == [45]

    # and once the claim lapses (a little before the interval ends), the next tick of any process runs
    cache.delete(housekeeping.TICK_KEY)
    assert housekeeping.housekeeping_tick(60) is True and runs == [45, 45]


@pytest.mark.django_db
def test_with_a_broker_a_tick_asks_for_pending_coins_only(settings, monkeypatch):
    # given a broker (no eager Celery), a coin pending for 5 minutes and the orphan sweep watched
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.COINSITE_PENDING_REQUEUE_SECONDS = 120
    swept: list[object] = []
    monkeypatch.setattr("predictions.sweeps.housekeeping_run", lambda **kwargs: swept.append(kwargs))
    asked: list[int] = []
    monkeypatch.setattr("predictions.enqueue.coin_predict", lambda *, coin_id, force=False: asked.append(coin_id))
    monkeypatch.setattr(housekeeping, "_jobs", [])
    coin = CoinFactory(status=Coin.Status.PENDING)
    Coin.objects.filter(pk=coin.pk).update(created_at=timezone.now() - timedelta(minutes=5))

    # when a web worker's timer ticks
    assert housekeeping.housekeeping_tick(60) is True

    # then the coin is asked for again, and no folder walk runs in the web worker
    assert asked == [coin.pk] and swept == []
