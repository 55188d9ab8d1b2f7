"""Abuse limits on the API: /api/predict, coin uploads and /api/token are throttled per client, with a 429 in the API's
error shape that says when to retry, counted before any work, rates from the settings (COINSITE_THROTTLE_*)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions import services, throttles
from predictions.models import Coin
from tests.factories import jpeg_bytes

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def assert_throttled(response, *, limit: str, call: str) -> int:
    """The 429 of the API: its error shape, naming the limit and the call, with a Retry-After that says the same."""
    assert response.status_code == 429, response.content[:300]
    body = response.json()
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert body == {
        "error": f"Too many requests: at most {limit} to {call}; retry in {retry_after} "
        f"second{'s' if retry_after != 1 else ''} (the Retry-After header says the same).",
        "field": None,
    }
    return retry_after


# --- /api/predict ----------------------------------------------------------------------------------------------------


def test_the_31st_predict_call_in_a_minute_is_refused_with_429_and_retry_after(collector, monkeypatch):
    """Cheap calls count like expensive ones: 30 bodies that are not even JSON use up the minute, and the 31st call,
    a valid one, is refused before its body is read (the service is never called)."""
    # given a client that has made 30 calls in the last minute (the default rate, 30/min)
    api = token_client(collector)
    for _ in range(30):
        assert api.post("/api/predict", "not json", content_type="application/json").status_code == 400
    called = []
    monkeypatch.setattr(services, "coin_batch_predict", lambda **kwargs: called.append(kwargs))

    # when it calls a 31st time, with a valid body
    body = {"inputs": [{"front_image_base64": "AAAA", "back_image_base64": "AAAA"}]}
    response = api.post("/api/predict", body, format="json")

    # then 429 saying when to retry, and nothing was done
    assert_throttled(response, limit="30 per minute", call="POST /api/predict")
    assert called == [] and Coin.objects.count() == 0


def test_a_throttled_call_reads_no_body(collector, rates):
    # given a client at its limit
    rates(predict="1/min")
    api = token_client(collector)
    api.post("/api/predict", "{}", content_type="application/json")

    # when it sends a body that would be refused as soon as it was read
    response = api.post("/api/predict", "not json", content_type="application/json")

    # then the answer is the 429, not the 400 the body deserves
    assert response.status_code == 429


def test_the_limit_is_per_user(collector, other_collector, rates):
    rates(predict="2/min")
    mine, theirs = token_client(collector), token_client(other_collector)
    for _ in range(2):
        mine.post("/api/predict", "{}", content_type="application/json")

    assert mine.post("/api/predict", "{}", content_type="application/json").status_code == 429
    assert theirs.post("/api/predict", "{}", content_type="application/json").status_code == 400


def test_anonymous_calls_are_refused_before_they_count(collector, rates):
    """401 comes first: nobody can use up a user's calls without their credentials."""
    rates(predict="1/min")
    for _ in range(3):
        assert APIClient().post("/api/predict", "{}", content_type="application/json").status_code == 401

    assert token_client(collector).post("/api/predict", "{}", content_type="application/json").status_code == 400


def test_calls_are_allowed_again_once_the_window_has_passed(collector, rates, monkeypatch):
    # given a client that used up its 2 calls per minute at t=1000 and t=1010
    rates(predict="2/min")
    api = token_client(collector)
    clock = [1000.0]
    monkeypatch.setattr(throttles.ScopedThrottle, "timer", lambda self: clock[0])
    api.post("/api/predict", "{}", content_type="application/json")
    clock[0] = 1010.0
    api.post("/api/predict", "{}", content_type="application/json")

    # when it calls at t=1030, then at t=1060.5 (the first call has left the window)
    clock[0] = 1030.0
    refused = api.post("/api/predict", "{}", content_type="application/json")
    clock[0] = 1060.5
    allowed = api.post("/api/predict", "{}", content_type="application/json")

    # then the first is refused, told to wait the 30 s until t=1060, and the second is served
    assert assert_throttled(refused, limit="2 per minute", call="POST /api/predict") == 30
    assert allowed.status_code == 400


def test_retry_after_is_rounded_up_to_whole_seconds(collector, rates, monkeypatch):
    rates(predict="1/s")
    api = token_client(collector)
    clock = [1000.0]
    monkeypatch.setattr(throttles.ScopedThrottle, "timer", lambda self: clock[0])
    api.post("/api/predict", "{}", content_type="application/json")
    clock[0] = 1000.3  # 0.7 s left: DRF's own Retry-After would say 0

    response = api.post("/api/predict", "{}", content_type="application/json")

    assert assert_throttled(response, limit="1 per second", call="POST /api/predict") == 1


@pytest.mark.parametrize(
    "backend", ["local memory", pytest.param("redis", marks=pytest.mark.integration)], ids=["locmem", "redis"]
)
def test_concurrent_calls_never_pass_the_limit(collector, rates, settings, backend, request):
    """The count is read and written under a lock in the cache: 8 threads x 10 calls at a limit of 30 let 30 through
    (fewer only if a call waited seconds for the lock, which refuses it). Without the lock, on Redis, 62 to 80 of the
    80 calls were served (threads that read the same history each write back their own, shorter one)."""
    # given a limit of 30 per minute in the cache under test (the threads authenticate without the database, which
    # is this test's alone)
    if backend == "redis":
        location = request.getfixturevalue("redis_url")
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location}}
        cache.clear()
        request.addfinalizer(cache.clear)
    rates(predict="30/min")
    statuses: list[int] = []

    def calls() -> None:
        client = APIClient()
        client.force_authenticate(collector)
        for _ in range(10):
            statuses.append(client.post("/api/predict", "{}", content_type="application/json").status_code)

    # when 8 clients call at once
    threads = [threading.Thread(target=calls) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then never more than 30 calls were served
    assert len(statuses) == 80 and set(statuses) <= {400, 429}
    assert 25 <= statuses.count(400) <= 30


def test_a_call_that_cannot_get_the_lock_is_refused_not_counted_unlocked(collector, monkeypatch):
    # given the client's count locked by another of its calls for longer than a call waits
    monkeypatch.setattr(throttles, "LOCK_WAIT_SECONDS", 0.05)
    cache.add(f"throttle_predict_user{collector.pk}_lock", 1, 60)

    response = token_client(collector).post("/api/predict", "{}", content_type="application/json")

    assert assert_throttled(response, limit="30 per minute", call="POST /api/predict") == 1
    assert cache.get(f"throttle_predict_user{collector.pk}") is None


def test_calls_are_served_when_the_cache_is_down(collector, monkeypatch, caplog):
    """Availability first: without its cache the API serves, unthrottled, and the log says why."""

    def unavailable(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(throttles.ScopedThrottle, "cache", type("DownCache", (), {"add": unavailable})())

    response = token_client(collector).post("/api/predict", "{}", content_type="application/json")

    assert response.status_code == 400
    assert "throttle cache unavailable" in caplog.text


# --- POST /api/coins/ and /api/token ---------------------------------------------------------------------------------


def test_coin_uploads_are_throttled_but_reading_coins_is_not(collector, rates):
    # given a client that used up its uploads
    rates(upload="2/min")
    api = token_client(collector)
    for _ in range(2):
        api.post("/api/coins/", {}, format="multipart")

    # when it uploads again, and lists its coins
    upload = api.post(
        "/api/coins/",
        {
            "front_image": SimpleUploadedFile("f.jpg", jpeg_bytes()),
            "back_image": SimpleUploadedFile("b.jpg", jpeg_bytes()),
        },
        format="multipart",
    )
    listing = api.get("/api/coins/")

    # then the upload is refused (and nothing stored), the list is served
    assert_throttled(upload, limit="2 per minute", call="POST /api/coins/")
    assert Coin.objects.count() == 0
    assert listing.status_code == 200


def test_token_requests_are_counted_per_address_whoever_asks(rates):
    """A password guesser is counted by address: changing the username it tries does not reset its count."""
    rates(token="3/min")
    guesser, elsewhere = APIClient(REMOTE_ADDR="203.0.113.7"), APIClient(REMOTE_ADDR="198.51.100.1")
    for name in ("alice", "bob", "carol"):
        assert guesser.post("/api/token", {"username": name, "password": "guess"}, format="json").status_code == 400

    response = guesser.post("/api/token", {"username": "dave", "password": "guess"}, format="json")

    assert_throttled(response, limit="3 per minute", call="POST /api/token")
    assert elsewhere.post("/api/token", {"username": "x", "password": "y"}, format="json").status_code == 400


def test_a_forged_forwarded_for_header_does_not_reset_the_count(rates):
    rates(token="2/min")
    guesser = APIClient(REMOTE_ADDR="203.0.113.7")
    statuses = [
        guesser.post("/api/token", {"username": "x", "password": "y"}, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code
        for n in range(3)
    ]

    assert statuses == [400, 400, 429]


def test_behind_a_proxy_the_address_it_forwarded_is_counted(rates, settings):
    # given one trusted proxy (COINSITE_NUM_PROXIES=1): every request comes from its address
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    rates(token="1/min")
    proxy = APIClient(REMOTE_ADDR="10.0.0.1")

    # when two clients ask through it (the client may forge the start of the header, not what the proxy appends)
    first = proxy.post("/api/token", {"username": "x", "password": "y"}, HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.7")
    again = proxy.post("/api/token", {"username": "x", "password": "y"}, HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.7")
    other = proxy.post("/api/token", {"username": "x", "password": "y"}, HTTP_X_FORWARDED_FOR="198.51.100.1")

    # then each is counted under its own address
    assert (first.status_code, again.status_code, other.status_code) == (400, 429, 400)


def test_the_token_endpoint_allows_10_calls_a_minute_by_default(settings):
    settings.COINSITE_LOGIN_FAILURE_LIMIT = 100  # the sign-in lockout (5 wrong passwords) would answer first
    client = APIClient()
    statuses = [client.post("/api/token", {"username": "x", "password": "y"}).status_code for _ in range(11)]

    assert statuses == [400] * 10 + [429]


# --- rates from the environment --------------------------------------------------------------------------------------


def settings_in_subprocess(code: str, **environ: str) -> subprocess.CompletedProcess:
    """Load the settings in a fresh process with these variables (settings are read once, at start-up)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "coinsite.settings", **environ}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


ACCOUNT_RATES = {
    "signin": "20/min",
    "signin_account": "10/min",
    "signup": "10/hour",
    "password_reset": "5/hour",
    "password_reset_email": "3/hour",
}


def test_rates_and_cache_come_from_the_environment():
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps([settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'], settings.CACHES['default']['BACKEND'], "
        "settings.COINSITE_TOKEN_TTL_HOURS]))"
    )
    defaults = settings_in_subprocess(code)
    configured = settings_in_subprocess(
        code,
        COINSITE_THROTTLE_PREDICT="100/hour",
        COINSITE_THROTTLE_UPLOAD="5/second",
        COINSITE_THROTTLE_TOKEN="3/min",
        COINSITE_THROTTLE_SIGNIN="7/hour",
        CACHE_URL="redis://127.0.0.1:6379/1",
        COINSITE_TOKEN_TTL_HOURS="12",
    )

    assert json.loads(defaults.stdout) == [
        {"predict": "30/min", "upload": "30/min", "token": "10/min", **ACCOUNT_RATES},
        "django.core.cache.backends.locmem.LocMemCache",
        0,
    ], defaults.stderr[-2000:]
    assert json.loads(configured.stdout) == [
        {"predict": "100/hour", "upload": "5/second", "token": "3/min", **ACCOUNT_RATES, "signin": "7/hour"},
        "django.core.cache.backends.redis.RedisCache",
        12,
    ], configured.stderr[-2000:]


def test_a_malformed_rate_stops_start_up_naming_the_variable():
    result = settings_in_subprocess(
        "from django.conf import settings; settings.REST_FRAMEWORK", COINSITE_THROTTLE_PREDICT="30 per minute"
    )

    assert result.returncode != 0
    assert "COINSITE_THROTTLE_PREDICT='30 per minute': write a rate as e.g. 30/min" in result.stderr


@pytest.mark.integration
def test_calls_are_counted_in_redis_shared_by_processes(collector, settings, redis_url, rates):
    """With CACHE_URL on Redis, every process (gunicorn worker) counts in the same place: a count made by another
    process (here: written straight into Redis by a second client) is seen."""
    # given the cache on Redis and a limit of 2 per minute
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    cache.clear()
    rates(predict="2/min")
    api = token_client(collector)

    # when this process calls twice, and a fresh connection (another process's view) looks at the count
    for _ in range(2):
        api.post("/api/predict", "{}", content_type="application/json")
    from django.core.cache.backends.redis import RedisCache

    other = RedisCache(redis_url, {})
    history = other.get(f"throttle_predict_user{collector.pk}")

    # then the other one sees both calls, and the third is refused
    assert len(history) == 2
    assert api.post("/api/predict", "{}", content_type="application/json").status_code == 429
    cache.clear()
