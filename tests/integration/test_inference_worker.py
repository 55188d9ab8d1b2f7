"""Real `inference` worker processes on Redis + PostgreSQL: uploads get predicted, and nothing accepted is lost when a
worker is killed with SIGKILL in the middle of a prediction."""

import re
import signal
import time

import pytest
from django.conf import settings

from predictions import housekeeping, services
from predictions.models import Coin, Prediction
from tests.factories import jpeg_bytes
from tests.integration.conftest import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def worker_env(tmp_path) -> dict[str, str]:
    """What a worker host would be given: the same database, broker, MLflow store and media storage."""
    return {
        "MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI,
        "MLFLOW_ARTIFACT_ROOT": settings.MLFLOW_ARTIFACT_ROOT,
        "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "COINSITE_VAR_DIR": str(tmp_path / "worker-var"),
        # Redis gives an unacknowledged task back after the visibility timeout: short here so the test is quick.
        "CELERY_VISIBILITY_TIMEOUT": "5",
    }


def upload(owner, n: int) -> Coin:
    return services.coin_create(owner=owner, front=jpeg_bytes(seed=2 * n), back=jpeg_bytes(seed=2 * n + 1))


def test_uploaded_coin_is_predicted_by_a_real_inference_worker(start_worker, production_model, collector, tmp_path):
    worker = start_worker("inference", **worker_env(tmp_path))

    coin = upload(collector, 1)

    wait_until(lambda: Prediction.objects.filter(coin=coin).exists(), timeout=90, message=f"prediction\n{worker.log()}")
    coin.refresh_from_db()
    prediction = coin.predictions.get()
    assert coin.status == Coin.Status.PREDICTED
    assert prediction.model_version.version == production_model
    assert 1700 - 50 <= prediction.year <= 2025 + 50
    assert "coin_predict_task" in worker.log()


def test_worker_killed_mid_prediction_is_replaced_and_no_upload_is_lost(
    start_worker, production_model, collector, tmp_path
):
    # given: a worker, and uploads accepted while it works
    first = start_worker("inference", **worker_env(tmp_path))
    coins = [upload(collector, n) for n in range(6)]

    # when: the worker is killed (SIGKILL, whole process group) as soon as it started on a prediction: its first task
    # is still loading the model from the registry, so that task is in flight and unacknowledged
    wait_until(lambda: re.search(r"coin_predict_task\[[^\]]+\] received", first.log()), timeout=90, message="a task")
    first.kill(signal.SIGKILL)
    predicted_before_kill = Prediction.objects.count()
    assert predicted_before_kill < len(coins), "the worker finished everything before it was killed"

    # then: a replacement worker predicts every accepted upload, exactly once per coin and version
    second = start_worker("inference", **worker_env(tmp_path))
    wait_until(
        lambda: Coin.objects.filter(status=Coin.Status.PREDICTED).count() == len(coins),
        timeout=120,
        message=lambda: f"all coins predicted\n--- replacement worker log ---\n{second.log()}",
    )
    for coin in coins:
        assert Prediction.objects.filter(coin=coin, model_version__version=production_model).count() == 1


def test_coins_of_an_inference_worker_killed_without_beat_are_predicted_once_by_age(
    start_worker, production_model, collector, tmp_path, settings, monkeypatch
):
    # given no beat, Redis's own redelivery an hour away (the default visibility timeout), and the web's housekeeping
    # timer in this process (as in a gunicorn worker), ticking every 5 s and asking again for coins pending 20 s
    env = {**worker_env(tmp_path), "CELERY_VISIBILITY_TIMEOUT": "3600"}
    settings.COINSITE_HOUSEKEEPING_SECONDS = 5
    settings.COINSITE_PENDING_REQUEUE_SECONDS = 20
    monkeypatch.setattr(housekeeping, "FIRST_RUN_AFTER_SECONDS", 1.0)
    monkeypatch.setattr(housekeeping, "_started", type(housekeeping._started)())
    monkeypatch.setattr(housekeeping, "_jobs", [])
    first = start_worker("inference", **env)
    coins = [upload(collector, n) for n in range(4)]

    # when the worker is killed (SIGKILL) once it holds a task, and its replacement starts
    wait_until(lambda: re.search(r"coin_predict_task\[[^\]]+\] received", first.log()), timeout=90, message="a task")
    first.kill(signal.SIGKILL)
    killed = time.monotonic()
    assert Prediction.objects.count() < len(coins), "the worker finished everything before it was killed"
    second = start_worker("inference", **env)
    timer = housekeeping.timer_start_if_enabled()
    try:
        # then every coin is predicted within 5 minutes, once
        wait_until(
            lambda: Coin.objects.filter(status=Coin.Status.PREDICTED).count() == len(coins),
            timeout=300,
            message=lambda: f"all coins predicted\n--- replacement worker log ---\n{second.log()}",
        )
        print(f"all {len(coins)} coins predicted {time.monotonic() - killed:.0f} s after the kill, without beat")
    finally:
        housekeeping.timer_stop()
        timer.join(timeout=30)
    for coin in coins:
        assert Prediction.objects.filter(coin=coin).count() == 1
