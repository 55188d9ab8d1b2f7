"""gunicorn.conf.py's hooks: what a worker does before it takes its first request."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from django.urls import clear_url_caches, get_resolver

from registry import serving

CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"


def load_conf(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # the file sets it when unset; keep it ours
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

    # when gunicorn has made the worker
    conf.post_worker_init(worker=None)

    # then the model was asked for, and the URL patterns are already resolved (cached on the resolver)
    assert warmed == [True]
    assert "url_patterns" in get_resolver().__dict__
