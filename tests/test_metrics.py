"""/metrics: who may scrape it, and what the request, prediction, queue and training-run metrics count.

In this process prometheus_client keeps its values in memory (no PROMETHEUS_MULTIPROC_DIR under pytest); the
multiprocess sums across gunicorn workers are tests/integration/test_metrics.py's.
"""

from __future__ import annotations

import base64

import pytest
import redis
from django.db import transaction
from django.urls import reverse
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from coinsite import metrics
from predictions.metrics import prediction_count_on_commit
from training.ml import synthetic
from training.models import TrainingRun

PUBLIC = "8.8.8.8"
TOKEN = "a-long-scrape-token-0123456789"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(response) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a /metrics answer."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


# --- access -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_answers_a_scraper_on_the_same_host_in_prometheus_text_format(client):
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"]
    assert "# TYPE coinsite_http_request_duration_seconds histogram" in response.content.decode()


@pytest.mark.django_db
def test_metrics_refuses_a_public_address_without_the_token(client, settings):
    settings.METRICS_TOKEN = TOKEN

    response = client.get("/metrics", REMOTE_ADDR=PUBLIC)

    assert response.status_code == 403
    assert b"coinsite_" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("authorization", "status"),
    [(f"Bearer {TOKEN}", 200), (f"bearer {TOKEN}", 200), (f"Bearer {TOKEN}x", 403), (f"Token {TOKEN}", 403), ("", 403)],
)
def test_metrics_answers_a_public_address_only_with_the_bearer_token(client, settings, authorization, status):
    settings.METRICS_TOKEN = TOKEN

    response = client.get("/metrics", REMOTE_ADDR=PUBLIC, HTTP_AUTHORIZATION=authorization)

    assert response.status_code == status


@pytest.mark.django_db
def test_an_empty_token_setting_never_matches_an_empty_bearer(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", REMOTE_ADDR=PUBLIC, HTTP_AUTHORIZATION="Bearer ").status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(("forwarded", "status"), [(PUBLIC, 403), ("10.1.2.3", 200), (f"10.1.2.3, {PUBLIC}", 403)])
def test_behind_a_trusted_proxy_the_forwarded_client_address_decides_not_the_proxys(
    client, settings, forwarded, status
):
    # given one TLS proxy on the same host: every request reaches Django from 127.0.0.1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)

    assert response.status_code == status


@pytest.mark.django_db
def test_without_trusted_proxies_a_forged_forwarded_header_changes_nothing(client):
    assert client.get("/metrics", REMOTE_ADDR=PUBLIC, HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403


@pytest.mark.django_db
def test_no_allowed_networks_leaves_the_token_as_the_only_way_in(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = []
    settings.METRICS_TOKEN = TOKEN

    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("10.20.30.40", True),
        ("172.16.0.1", True),
        ("172.31.255.254", True),
        ("192.168.1.9", True),
        ("fd12:3456::1", True),
        ("::ffff:10.0.0.7", True),
        ("172.32.0.1", False),
        ("203.0.113.9", False),  # a documentation network: Python calls it "private", the default list does not
        ("100.64.0.1", False),
        ("2001:db8::1", False),
        ("", False),
        ("unknown", False),
    ],
)
def test_default_networks_are_loopback_and_private_ranges(settings, address, allowed):
    assert metrics.address_allowed(address, settings.METRICS_ALLOWED_NETWORKS) is allowed


def test_metrics_is_get_only(client):
    assert client.post("/metrics").status_code == 405


# --- request latency ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_request_latency_is_labelled_by_route_name_method_and_status_class(client):
    labels = {"view": "healthz", "method": "GET", "status": "2xx"}
    unmatched = {"view": "<unmatched>", "method": "GET", "status": "4xx"}
    other = {"view": "healthz", "method": "other", "status": "4xx"}
    before = {
        name: sample("coinsite_http_request_duration_seconds_count", **values)
        for name, values in (("ok", labels), ("404", unmatched), ("other", other))
    }

    client.get("/healthz")
    client.get("/no-such-page/12345/")
    client.generic("BREW", "/healthz")

    assert sample("coinsite_http_request_duration_seconds_count", **labels) == before["ok"] + 1
    assert sample("coinsite_http_request_duration_seconds_count", **unmatched) == before["404"] + 1
    assert sample("coinsite_http_request_duration_seconds_count", **other) == before["other"] + 1
    assert sample("coinsite_http_request_duration_seconds_sum", **labels) > 0


# --- predictions ------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_prediction_counts_once_its_transaction_commits(django_capture_on_commit_callbacks):
    labels = {"version": "907", "outcome": "not_a_coin"}
    before = sample("coinsite_predictions_total", **labels)

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            prediction_count_on_commit(version=907, rejected="not_a_coin")
        assert sample("coinsite_predictions_total", **labels) == before

    assert sample("coinsite_predictions_total", **labels) == before + 1


@pytest.mark.django_db
def test_a_rolled_back_prediction_counts_nothing(django_capture_on_commit_callbacks):
    labels = {"version": "908", "outcome": "year"}

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            prediction_count_on_commit(version=908, rejected="")
            raise RuntimeError("the batch failed")

    assert callbacks == []
    assert REGISTRY.get_sample_value("coinsite_predictions_total", labels) is None


@pytest.mark.django_db(transaction=True)
def test_api_predictions_are_counted_by_model_version(collector, production_model, client):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=collector).key}")
    pairs = [(front, back) for front, back, _year in synthetic.iter_coins(3, seed=31)]
    body = {
        "inputs": [
            {"front_image_base64": base64.b64encode(f).decode(), "back_image_base64": base64.b64encode(b).decode()}
            for f, b in pairs
        ]
    }
    version = str(production_model)

    def counted() -> float:
        families = scraped(client.get("/metrics"))
        return sum(
            value
            for (name, labels), value in families.items()
            if name == "coinsite_predictions_total" and dict(labels)["version"] == version
        )

    before = counted()
    response = api.post(reverse("api-predict"), body, format="json")

    assert response.status_code == 200, response.content
    assert counted() == before + 3


# --- state read at scrape time ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_training_runs_are_counted_by_status_with_zeros(client):
    TrainingRun.objects.create(config={}, status=TrainingRun.Status.SUCCEEDED)
    TrainingRun.objects.create(config={}, status=TrainingRun.Status.SUCCEEDED)
    TrainingRun.objects.create(config={}, status=TrainingRun.Status.FAILED)

    values = scraped(client.get("/metrics"))

    runs = {
        dict(labels)["status"]: value for (name, labels), value in values.items() if name == "coinsite_training_runs"
    }
    assert runs == {"queued": 0, "running": 0, "succeeded": 2, "failed": 1, "cancelled": 0}


@pytest.mark.django_db
def test_no_queue_lengths_without_a_broker(client, settings):
    settings.CELERY_BROKER_URL = ""

    body = client.get("/metrics").content.decode()

    assert "coinsite_celery_queue_length" not in body and "coinsite_celery_broker_up" not in body


@pytest.mark.integration
def test_queue_lengths_are_read_from_redis_including_priority_lists(redis_url, settings):
    # given 3 messages on `inference` and 2 on `training`'s priority-3 list (kombu's key for priority 3)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.lpush("inference", "a", "b", "c")
    client.lpush("training\x06\x163", "d", "e")
    settings.CELERY_BROKER_URL = redis_url
    try:
        families = {family.name: family for family in metrics.QueueLengthCollector().collect()}
    finally:
        client.flushdb()

    lengths = {s.labels["queue"]: s.value for s in families["coinsite_celery_queue_length"].samples}
    assert lengths == {"inference": 3, "training": 2}
    assert families["coinsite_celery_broker_up"].samples[0].value == 1


def test_a_dead_broker_reports_down_instead_of_failing_the_scrape(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    families = {family.name: family for family in metrics.QueueLengthCollector().collect()}

    assert list(families) == ["coinsite_celery_broker_up"]
    assert families["coinsite_celery_broker_up"].samples[0].value == 0
