"""`/metrics` for Prometheus: request latency, predictions, Celery queue lengths and training runs.

Two kinds of metric. Those a process counts as it works (the request latency histogram here, the predictions counter
of predictions/metrics.py) live, under gunicorn, in prometheus_client's multiprocess files: gunicorn.conf.py sets
PROMETHEUS_MULTIPROC_DIR before any worker starts, so a scrape answered by any one worker sums all of them. Those
that describe shared state (queue lengths in the broker, training runs in the database) are read when Prometheus
scrapes, by whichever worker answers, so they are never stale and never counted twice.

The endpoint is not for the world (it names views, model versions and traffic): it answers scrapers from the
networks in METRICS_ALLOWED_NETWORKS (loopback and private networks by default) and anyone presenting
`Authorization: Bearer <METRICS_TOKEN>`; everyone else gets 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterable
from functools import cache
from urllib.parse import urlparse

import redis
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from kombu.transport.redis import PRIORITY_STEPS, Channel
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from training.models import TrainingRun

logger = logging.getLogger(__name__)

# The Celery queues whose backlog an operator watches: a growing `inference` queue means uploads wait for a year.
QUEUES = ("inference", "training")
BROKER_TIMEOUT_SECONDS = 1.0
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# From a 2 ms health check to a 16-input /api/predict of 12 MP photos (about 2 s on 2 cores).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUEST_LATENCY = Histogram(
    "coinsite_http_request_duration_seconds",
    "Time from request to response, by route name, method and status class.",
    ["view", "method", "status"],
    buckets=LATENCY_BUCKETS,
)


def view_label(request: HttpRequest) -> str:
    """The route's name (`api-predict`, `admin:index`), or its pattern when unnamed. Never the path itself: paths
    carry ids and whatever a scanner tries, and every distinct label value is a time series kept forever."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unmatched>"  # 404s, and static files answered by whitenoise before URL resolution
    return match.view_name or match.route or "<unnamed>"


class RequestLatencyMiddleware:
    """Observes every request's duration in REQUEST_LATENCY. Outermost in MIDDLEWARE, so the time includes the other
    middleware; an exception in a view has already become a 500 response by the time it returns here."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in KNOWN_METHODS else "other"
        REQUEST_LATENCY.labels(
            view=view_label(request), method=method, status=f"{response.status_code // 100}xx"
        ).observe(time.perf_counter() - started)
        return response


def queue_keys(queue: str) -> list[str]:
    """The Redis lists of one Celery queue: kombu keeps one list per priority step beside the queue's own name."""
    return [queue] + [f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS if step]


@cache
def broker_client(url: str) -> redis.Redis:
    """One client (and connection pool) per process and broker, with short timeouts: a scrape must not hang on a
    dead broker."""
    return redis.Redis.from_url(
        url, socket_timeout=BROKER_TIMEOUT_SECONDS, socket_connect_timeout=BROKER_TIMEOUT_SECONDS
    )


class QueueLengthCollector:
    """Messages waiting in each Celery queue (Redis LLEN at scrape time), and whether the broker answered. Nothing
    without a broker (the embedded default runs tasks in-process) or with a broker other than Redis."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        url = settings.CELERY_BROKER_URL
        if not url or urlparse(url).scheme not in ("redis", "rediss"):
            return []
        lengths = GaugeMetricFamily(
            "coinsite_celery_queue_length",
            "Messages waiting in a Celery queue (not yet taken by a worker).",
            labels=["queue"],
        )
        up = GaugeMetricFamily("coinsite_celery_broker_up", "1 when the broker answered this scrape, else 0.")
        try:
            pipe = broker_client(url).pipeline(transaction=False)
            for queue in QUEUES:
                for key in queue_keys(queue):
                    pipe.llen(key)
            sizes = iter(pipe.execute())
        except redis.RedisError as error:
            logger.warning("metrics: the broker did not answer: %s", error)
            up.add_metric([], 0)
            return [up]
        for queue in QUEUES:
            lengths.add_metric([queue], sum(next(sizes) for _ in queue_keys(queue)))
        up.add_metric([], 1)
        return [lengths, up]


class TrainingRunCollector:
    """Training runs by status, counted in the database at scrape time (every status present, 0 when none): the
    web, the training workers and the reaper all change them, and only the database knows them all."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        runs = GaugeMetricFamily(
            "coinsite_training_runs", "Training runs in the database, by status.", labels=["status"]
        )
        try:
            counts = dict(TrainingRun.objects.order_by().values_list("status").annotate(n=Count("id")))
        except DatabaseError as error:
            logger.warning("metrics: training runs not counted: %s", error)
            return []
        for status in TrainingRun.Status.values:
            runs.add_metric([status], counts.get(status, 0))
        return [runs]


def scrape_registry() -> CollectorRegistry:
    """What one scrape reports: every process's counters (multiprocess files under gunicorn, this process's own
    registry otherwise: runserver, tests) plus the state read now."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    registry.register(QueueLengthCollector())
    registry.register(TrainingRunCollector())
    return registry


def client_address(request: HttpRequest) -> str:
    """The scraper's address as DRF's throttles see it: REMOTE_ADDR, or with COINSITE_NUM_PROXIES trusted proxies the
    address the nearest one appended to X-Forwarded-For. Behind a proxy REMOTE_ADDR is the proxy's own (private)
    address, which would let the whole internet in."""
    remote = request.META.get("REMOTE_ADDR", "")
    num_proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if num_proxies and forwarded:
        addresses = [address.strip() for address in forwarded.split(",")]
        return addresses[-min(num_proxies, len(addresses))]
    return remote


def address_allowed(address: str, networks: Iterable[str]) -> bool:
    """Whether `address` lies in one of `networks` (CIDR strings); an unparsable address never does."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.1.2.3 on a dual-stack socket is 10.1.2.3
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


def token_presented(request: HttpRequest, token: str) -> bool:
    """Whether the request carries `Authorization: Bearer <token>`; compared in constant time."""
    if not token:
        return False
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def metrics_allowed(request: HttpRequest) -> bool:
    """The access rule of /metrics: a trusted network, or the bearer token."""
    return address_allowed(client_address(request), settings.METRICS_ALLOWED_NETWORKS) or token_presented(
        request, settings.METRICS_TOKEN
    )


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus's text exposition format; 403 outside the access rule."""
    if not metrics_allowed(request):
        return HttpResponse(
            "/metrics answers private networks or the METRICS_TOKEN bearer token.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
