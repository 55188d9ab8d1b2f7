"""gunicorn.conf.py's hooks: what a worker does before it takes its first request."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import clear_url_caches, get_resolver
from gunicorn import util as gunicorn_util

from registry import serving

CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"


def load_conf(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # the file sets it when unset; keep it ours
    # The file also defaults the housekeeping timer on for gunicorn's workers: undone after the test, or every later
    # subprocess of the session would inherit it and start the timer (it broke tests/test_observability.py's log
    # lines when both ran in one pytest process).
    monkeypatch.setenv("COINSITE_HOUSEKEEPING_SECONDS", os.environ.get("COINSITE_HOUSEKEEPING_SECONDS", "0"))
    spec = importlib.util.spec_from_file_location("gunicorn_conf_under_test", CONF)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_worker_loads_the_model_and_the_urlconf_before_its_first_request(monkeypatch, tmp_path):
    # given a fresh URL resolver (Django would import the URLconf during the first request) and no model loaded
    conf = load_conf(monkeypatch, tmp_path)
    warmed = []
    monkeypatch.setattr(serving, "warm_up", lambda: warmed.append(True))
    clear_url_caches()

    # when gunicorn has made the worker (one of one: the tests' per-process cache is then no problem)
    conf.post_worker_init(worker=SimpleNamespace(cfg=SimpleNamespace(workers=1)))

    # then the model was asked for, and the URL patterns are already resolved (cached on the resolver)
    assert warmed == [True]
    assert "url_patterns" in get_resolver().__dict__


def test_a_worker_of_two_refuses_to_boot_with_a_per_process_cache_before_loading_the_model(
    monkeypatch, tmp_path, settings
):
    # given production settings (DEBUG off) with the local-memory cache, and two workers
    conf = load_conf(monkeypatch, tmp_path)
    warmed = []
    monkeypatch.setattr(serving, "warm_up", lambda: warmed.append(True))
    settings.DEBUG = False
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    monkeypatch.delenv("COINSITE_ALLOW_LOCAL_CACHE", raising=False)

    # when the worker boots, it refuses (gunicorn's master then stops: "Worker failed to boot")
    with pytest.raises(ImproperlyConfigured, match="Refusing to start 2 workers: The cache is LocMemCache"):
        conf.post_worker_init(worker=SimpleNamespace(cfg=SimpleNamespace(workers=2)))
    assert warmed == []

    # and with a shared cache it boots
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "t"}}
    conf.post_worker_init(worker=SimpleNamespace(cfg=SimpleNamespace(workers=2)))
    assert warmed == [True]


def test_gunicorns_own_errors_are_written_in_the_api_json_shape(monkeypatch, tmp_path):
    # given a worker after its fork (the hook points gunicorn's error writer at the JSON one)
    conf = load_conf(monkeypatch, tmp_path)
    monkeypatch.setattr(gunicorn_util, "write_error", gunicorn_util.write_error)  # restored after the test
    conf.post_fork(server=None, worker=None)
    left, right = socket.socketpair()

    # when gunicorn refuses a request line that is too long
    gunicorn_util.write_error(left, 400, "Bad Request", "Request Line is too large (9000 > 8190)")
    left.close()
    answer = right.recv(65536).decode()

    # then the answer is the API's JSON error, not an HTML page
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 400 Bad Request") and "Content-Type: application/json" in head
    assert json.loads(body) == {"error": "Bad Request: Request Line is too large (9000 > 8190)", "field": None}
    assert f"Content-Length: {len(body)}" in head
    assert conf.limit_request_line == 8190


def test_loading_the_config_leaves_the_test_process_environment_as_it_was(monkeypatch, tmp_path):
    before = os.environ.get("COINSITE_HOUSEKEEPING_SECONDS")

    with monkeypatch.context() as inner:
        load_conf(inner, tmp_path)

    assert os.environ.get("COINSITE_HOUSEKEEPING_SECONDS") == before
