"""/healthz and /readyz: readiness names each dependency that is down (broker, object storage, MLflow) with a 503,
and is 200 again once it is back. Real servers: a private redis-server and moto's S3 server on free ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import boto3
import pytest

from tests.integration.s3 import BUCKET, free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def wait_port(port: int, *, up: bool, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.1)
    raise AssertionError(f"port {port} did not go {'up' if up else 'down'}")


def start_redis(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    wait_port(port, up=True)
    return server


def test_healthz_is_200_and_readyz_reports_every_check(client, no_model):
    assert client.get("/healthz").json() == {"status": "ok"}
    body = client.get("/readyz").json()
    assert set(body["checks"]) == {"database", "broker", "mlflow", "storage", "static", "model"}
    assert body["status"] == "ok", body
    assert body["checks"]["model"]["detail"].startswith("none registered yet")


def test_readyz_names_the_broker_when_redis_stops_and_recovers_when_it_is_back(client, settings, no_model):
    port = free_port()
    redis = start_redis(port)
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    try:
        assert client.get("/readyz").status_code == 200

        redis.terminate()
        redis.wait(timeout=30)
        wait_port(port, up=False)
        down = client.get("/readyz")
        assert down.status_code == 503 and down.json()["status"] == "unavailable: broker down", down.json()

        redis = start_redis(port)
        assert client.get("/readyz").status_code == 200
    finally:
        redis.terminate()
        redis.wait(timeout=30)


def test_readyz_names_the_object_store_and_mlflow_when_they_are_unreachable(client, settings, no_model, s3_photos):
    assert client.get("/readyz").status_code == 200  # photos on the S3 server

    boto3.client("s3", endpoint_url=settings.STORAGES["default"]["OPTIONS"]["endpoint_url"]).delete_bucket(
        Bucket=BUCKET
    )
    settings.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{free_port()}"  # no tracking server there
    try:
        down = client.get("/readyz")
    finally:
        boto3.client("s3", endpoint_url=settings.STORAGES["default"]["OPTIONS"]["endpoint_url"]).create_bucket(
            Bucket=BUCKET
        )

    assert down.status_code == 503
    assert down.json()["status"] == "unavailable: mlflow, storage down", down.json()
    assert "NoSuchBucket" in down.json()["checks"]["storage"]["detail"]
    assert down.json()["checks"]["model"]["detail"] == "not checked: MLflow is down"
