"""The distributed deployment on three hosts that share no disk: web (gunicorn), an inference worker and a training
worker, each started as the production Procfile starts it, in its own folder, told only environment variables; with
PostgreSQL, Redis, an S3-protocol object store (moto's server) and an `mlflow server` over TCP between them.

The learning loop runs end to end over HTTP: a collector uploads coins through the API; a curator labels them on the
review desk; a model owner starts a training run in the admin, which the training worker executes and registers in
the MLflow server; the owner promotes it, and the inference worker predicts the coins that waited and a new upload;
a second run's version is promoted and the web host and the inference worker serve it without a restart. At the
end no host has a photo on its disk, every photo is an object in the bucket, and every prediction is counted once in
Prometheus, by the host that stored it (the web host's /metrics, the inference worker's own port).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
import redis
import requests
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from prometheus_client.parser import text_string_to_metric_families

from predictions.models import Coin, Prediction
from predictions.roles import role_groups_ensure, user_add_role
from registry.models import ModelVersion
from tests.conftest import REDIS_HOST, REDIS_PORT, TINY_OVERRIDES
from tests.integration.conftest import database_url_of_test_db
from tests.integration.hosts import ROOT, Host, MlflowServer, free_port, photo_files, procfile_command, stop_groups
from training.ml.synthetic import iter_coins
from training.models import TrainingRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "coinsite-hosts"
MODEL = "coin-year"
BROKER_DB, CACHE_DB = 12, 13  # Redis databases of this test alone, flushed before and after
LABELLED = 12
PASSWORD = "a-long-separate-hosts-phrase-42"
CODE_SKIP = frozenset({".git", ".venv", "var", "node_modules", "__pycache__", "test-artifacts"})
FINISHED = {TrainingRun.Status.SUCCEEDED, TrainingRun.Status.FAILED, TrainingRun.Status.CANCELLED}


@dataclass
class Deployment:
    web: Host
    inference: Host
    training: Host
    mlflow: MlflowServer
    s3: object  # a boto3 S3 client of the object store
    url: str
    since: float  # time.time() before any host started
    inference_metrics: str  # the inference worker's own metrics endpoint

    @property
    def hosts(self) -> tuple[Host, Host, Host]:
        return (self.web, self.inference, self.training)

    def logs(self) -> str:
        return "\n".join(f"--- {host.name} ---\n{host.log()[-4000:]}" for host in self.hosts)


def users_create() -> None:
    """The three roles, one user each. Their password is hashed with the web host's hasher (Django's default PBKDF2),
    not the suite's fast MD5 one, which a host without the test settings does not know."""
    role_groups_ensure()  # a transactional test flushed the migration's groups
    hasher = PBKDF2PasswordHasher()
    encoded = hasher.encode(PASSWORD, hasher.salt())
    User.objects.create(username="collector", password=encoded)
    for name, role in (("curator", "curator"), ("owner", "model_owner")):
        user_add_role(user=User.objects.create(username=name, password=encoded, is_staff=True), role=role)


@pytest.fixture
def deployment(postgres_only, redis_url, transactional_db, tmp_path, s3_endpoint) -> Iterator[Deployment]:
    since = time.time()
    databases = [redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db) for db in (BROKER_DB, CACHE_DB)]
    for database in databases:
        database.flushdb()
    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="hosts", aws_secret_access_key="k"
    )
    s3.create_bucket(Bucket=BUCKET)
    mlflow = MlflowServer(tmp_path / "mlflow-server")
    web_port = free_port()
    env = {
        "DATABASE_URL": database_url_of_test_db(),
        "CELERY_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
        "CACHE_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{CACHE_DB}",
        "MLFLOW_TRACKING_URI": mlflow.url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "hosts",
        "AWS_SECRET_ACCESS_KEY": "k",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_HTTPS": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "INFERENCE_ALIAS_POLL_SECONDS": "1",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "2",
    }
    web = Host(
        "web",
        tmp_path / "web",
        {
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{web_port}",
            # the Procfile runs gunicorn in the project's root, where it finds gunicorn.conf.py by itself
            "GUNICORN_CMD_ARGS": f"--config={ROOT / 'gunicorn.conf.py'}",
        },
    )
    inference_metrics_port = free_port()
    inference = Host(
        "inference", tmp_path / "inference", {**env, "COINSITE_WORKER_METRICS_PORT": str(inference_metrics_port)}
    )
    training = Host("training", tmp_path / "training", env)
    hosts = (web, inference, training)
    try:
        t0 = time.monotonic()
        mlflow.start()  # slow to answer: it starts while the hosts prepare
        users_create()
        inference.start(procfile_command("inference"))  # the workers need no release step: they start meanwhile
        training.start(procfile_command("training"))
        web.run(procfile_command("release"))  # migrate (a no-op on the test database) + collectstatic
        t1 = time.monotonic()
        mlflow.wait()
        t2 = time.monotonic()
        web.start(procfile_command("web"))
        url = f"http://127.0.0.1:{web_port}"
        web.wait_for_http(f"{url}/healthz", timeout=180)
        for worker in (inference, training):
            worker.wait_for_log("ready.", timeout=180)
        print(f"setup: release+users {t1 - t0:.0f} s, mlflow {t2 - t1:.0f} s, hosts {time.monotonic() - t2:.0f} s")
        yield Deployment(
            web=web,
            inference=inference,
            training=training,
            mlflow=mlflow,
            s3=s3,
            url=url,
            since=since,
            inference_metrics=f"http://127.0.0.1:{inference_metrics_port}/metrics",
        )
    finally:
        stop_groups(*(host.process for host in hosts), mlflow.process)
        for database in databases:
            database.flushdb()
        for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
        s3.delete_bucket(Bucket=BUCKET)


class Client:
    """A user of the web host over HTTP: an API token, and a signed-in admin session with its CSRF cookie."""

    def __init__(self, url: str, username: str) -> None:
        self.url = url
        self.session = requests.Session()
        response = requests.post(f"{url}/api/token", data={"username": username, "password": PASSWORD}, timeout=60)
        assert response.status_code in (200, 201), response.text[:300]
        self.token = response.json()["token"]

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Token {self.token}"}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=120, **kwargs)

    def sign_in(self, username: str) -> Client:
        page = self.session.get(f"{self.url}/admin/login/", timeout=60)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = self.session.post(
            f"{self.url}/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": token, "username": username, "password": PASSWORD, "next": "/admin/"},
            allow_redirects=False,
            timeout=60,
        )
        assert response.status_code == 302, response.text[:500]
        return self

    def post_form(self, path: str, data: dict[str, str]) -> requests.Response:
        headers = {"X-CSRFToken": self.session.cookies["csrftoken"], "Referer": f"{self.url}{path}"}
        return self.session.post(f"{self.url}{path}", data=data, headers=headers, allow_redirects=False, timeout=120)


def upload(collector: Client, front: bytes, back: bytes) -> int:
    response = collector.api(
        "POST",
        "/api/coins/",
        files={"front_image": ("front.jpg", front, "image/jpeg"), "back_image": ("back.jpg", back, "image/jpeg")},
    )
    assert response.status_code in (201, 202), response.text[:500]  # 202: the prediction is queued
    return response.json()["id"]


def predictions_counted(text: str) -> dict[int, float]:
    """coinsite_predictions_total of a scrape, by model version (all outcomes together)."""
    counted: dict[int, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "coinsite_predictions_total":
                version = int(sample.labels["version"])
                counted[version] = counted.get(version, 0) + sample.value
    return counted


def ran(task: str, *hosts: Host) -> bool:
    """Whether one of ``hosts`` executed ``task`` (a worker's start-up banner lists every task: not counted)."""
    return any(re.search(rf"{task}\[[0-9a-f-]+\] succeeded", host.log()) for host in hosts)


def wait_for(predicate, *, timeout: float, message: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {message()}"
        time.sleep(interval)


def prediction_of(collector: Client, coin_id: int) -> dict | None:
    response = collector.api("GET", f"/api/coins/{coin_id}/")
    assert response.status_code == 200, response.text[:300]
    predictions = response.json()["predictions"]
    return predictions[0] if predictions else None


def train(owner: Client, deployment: Deployment) -> TrainingRun:
    """Start a tiny training run in the admin as the model owner; the training worker executes it."""
    response = owner.post_form("/admin/training/trainingrun/start/", {"overrides": "\n".join(TINY_OVERRIDES)})
    assert response.status_code == 302, response.text[:1000]
    run_id = int(re.search(r"/trainingrun/(\d+)/change/", response.headers["Location"]).group(1))
    wait_for(
        lambda: TrainingRun.objects.get(pk=run_id).status in FINISHED,
        timeout=240,
        message=lambda: f"training run {run_id}\n{deployment.logs()}",
        interval=1,
    )
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == TrainingRun.Status.SUCCEEDED, (run.error, deployment.logs())
    return run


def promote(owner: Client, version: int) -> None:
    mirror = ModelVersion.objects.get(name=MODEL, version=version)
    response = owner.post_form(f"/admin/registry/modelversion/{mirror.pk}/promote/", {})
    assert response.status_code == 302, response.text[:1000]


def predict(collector: Client, coin: tuple[bytes, bytes, int]) -> dict:
    """POST /api/predict on the web host; returns the prediction stored for the input (its coin's newest)."""
    front, back, _year = coin
    body = {
        "inputs": [
            {
                "front_image_base64": base64.b64encode(front).decode(),
                "back_image_base64": base64.b64encode(back).decode(),
            }
        ]
    }
    response = collector.api("POST", "/api/predict", json=body)
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["predictions"]) == 1
    newest = collector.api("GET", "/api/coins/").json()["results"][0]
    return newest["predictions"][0]


def test_web_inference_and_training_hosts_share_nothing_but_the_services(deployment):
    d = deployment
    started = time.monotonic()
    collector = Client(d.url, "collector")
    curator = Client(d.url, "curator").sign_in("curator")
    owner = Client(d.url, "owner").sign_in("owner")
    coins = list(iter_coins(LABELLED + 4, seed=61, size=96))

    # given: coins uploaded by a collector before any model exists, labelled by a curator on the review desk
    labelled = {upload(collector, front, back): year for front, back, year in coins[:LABELLED]}
    for coin_id, year in labelled.items():
        response = curator.post_form(f"/admin/predictions/coin/{coin_id}/review/", {"year": str(year)})
        assert response.status_code == 302, response.text[:1000]
    assert sorted(Coin.objects.filter(verified_year__isnull=False).values_list("id", flat=True)) == sorted(labelled)

    # when: the owner starts a training run; the training worker trains, logs and registers it in the MLflow server
    first = train(owner, d)
    versions = d.mlflow.versions(MODEL)
    assert list(versions) == [1] and versions[1] == first.mlflow_run_id
    assert ran("training_run_execute_task", d.training) and not ran("training_run_execute_task", d.web, d.inference)
    if d.mlflow.alias(MODEL, "production") is None:  # not better than the constant baseline: the owner decides
        assert first.verdict == TrainingRun.Verdict.REJECTED
        promote(owner, 1)
    assert d.mlflow.alias(MODEL, "production") == 1

    # then: the inference worker predicts the coins that waited for a model, and a new upload
    coin_id = upload(collector, *coins[LABELLED][:2])
    for waiting in [*labelled, coin_id]:
        prediction = wait_for(
            lambda waiting=waiting: prediction_of(collector, waiting),
            timeout=90,
            message=lambda waiting=waiting: f"coin {waiting}'s prediction\n{d.logs()}",
        )
        assert prediction["model_version"] == 1
    assert ran("coin_predict_task", d.inference) and not ran("coin_predict_task", d.web, d.training)

    # and the web host serves version 1 itself (POST /api/predict stores the input as a coin with its prediction)
    web_pids = d.web.pids()
    inference_pids = d.inference.pids()
    assert len(web_pids) == 2 and inference_pids  # gunicorn's master and its one worker; the Celery worker
    answer = predict(collector, coins[LABELLED + 1])
    assert answer["model_version"] == 1

    # when: a second training run registers version 2 and the owner promotes it
    second = train(owner, d)
    assert set(d.mlflow.versions(MODEL)) == {1, 2} and d.mlflow.versions(MODEL)[2] == second.mlflow_run_id
    promote(owner, 2)
    assert d.mlflow.alias(MODEL, "production") == 2

    # then: the web host answers with version 2 at once, and the inference worker follows the alias: no restart
    assert predict(collector, coins[LABELLED + 2])["model_version"] == 2
    d.inference.wait_for_log(f"serving {MODEL} v2 (was v1)", timeout=60)
    later = upload(collector, *coins[LABELLED + 3][:2])
    prediction = wait_for(
        lambda: prediction_of(collector, later), timeout=90, message=lambda: f"coin {later}'s prediction\n{d.logs()}"
    )
    assert prediction["model_version"] == 2
    assert d.web.pids() == web_pids and d.inference.pids() == inference_pids
    assert all(host.alive() for host in d.hosts)

    # and: every photo and thumbnail is an object in the bucket, and no host has a photo or a media folder on its disk
    stored = Coin.objects.all()
    assert stored.count() == LABELLED + 4
    names = {
        name
        for coin in stored
        for name in (coin.front_image.name, coin.back_image.name, coin.front_thumbnail.name, coin.back_thumbnail.name)
        if name
    }
    objects = {item["Key"] for item in d.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    assert len(names) >= 2 * stored.count()
    assert {f"media/{name}" for name in names} <= objects
    first_coin = Coin.objects.get(pk=min(labelled))
    stored_front = d.s3.get_object(Bucket=BUCKET, Key=f"media/{first_coin.front_image.name}")["Body"].read()
    assert stored_front == coins[0][0]
    full = curator.session.get(f"{d.url}/coins/{first_coin.pk}/front/", timeout=60)  # as the review desk shows it
    thumb = curator.session.get(f"{d.url}/coins/{first_coin.pk}/front/?size=thumb", timeout=60)
    assert full.status_code == thumb.status_code == 200
    assert full.content == coins[0][0] and thumb.headers["Content-Type"] == "image/jpeg"
    for host in d.hosts:
        assert not (host.var_dir / "media").exists(), host.name
        assert photo_files(host.cwd, skip=(host.var_dir / "staticfiles",)) == [], host.name
    assert photo_files(ROOT, skip_names=CODE_SKIP, since=d.since) == []  # nor the code they all import
    assert photo_files(d.mlflow.folder / "artifacts")  # the runs' charts: the training host kept none of them

    # and: each prediction is counted once, by the host that stored it: the web host's /api/predict answers on its
    # /metrics, the inference worker's on its own port
    web_counted = predictions_counted(requests.get(f"{d.url}/metrics", timeout=30).text)
    worker_counted = predictions_counted(requests.get(d.inference_metrics, timeout=30).text)
    assert web_counted == {1: 1, 2: 1}
    assert worker_counted == {1: LABELLED + 1, 2: 1}
    assert Prediction.objects.count() == sum(web_counted.values()) + sum(worker_counted.values())
    print(
        f"separate hosts: {stored.count()} coins, {len(objects)} objects in the bucket, versions 1 and 2 trained by "
        f"the training host and served without a restart, in {time.monotonic() - started:.0f} s"
    )
