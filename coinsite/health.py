"""Liveness and readiness for load balancers and orchestrators.

`/healthz` answers 200 while the process serves requests at all. `/readyz` checks what a request needs and answers
503 naming each part that is down: the database, the broker (when one is configured), the MLflow tracking store, the
photo storage, the static files manifest (without it every page is a 500), and the Production model (loaded, with
its version; "none registered yet" is ready: uploads wait for the first model). Each check has a short timeout, so a
probe never hangs on a dead dependency.

Access: `/healthz` is public (it says nothing). `/readyz` names hosts, databases and buckets in its details, so it
follows the rule of `/metrics` (coinsite.metrics.metrics_allowed: METRICS_ALLOWED_NETWORKS or the METRICS_TOKEN
bearer token); anyone else gets 403 and no detail. All three are exempt from the HTTPS redirect
(SECURE_REDIRECT_EXEMPT), so a load balancer or Prometheus that reaches the host over plain http still sees them.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from coinsite.metrics import metrics_allowed
from registry import gateway

TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def check_broker() -> str:
    if not settings.CELERY_BROKER_URL:
        return "none (tasks run in-process)"
    from kombu import Connection  # lazy: only a deployment with a broker pays for it

    with Connection(settings.CELERY_BROKER_URL, connect_timeout=TIMEOUT_SECONDS) as broker:
        broker.ensure_connection(max_retries=1, timeout=TIMEOUT_SECONDS)
    return urlparse(settings.CELERY_BROKER_URL).scheme


def check_mlflow() -> str:
    uri = settings.MLFLOW_TRACKING_URI
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        response = requests.get(uri.rstrip("/") + "/health", timeout=TIMEOUT_SECONDS)
        response.raise_for_status()
        return "tracking server"
    if parsed.scheme == "sqlite":
        path = uri.split(":///", 1)[-1]
        if not Path(path).exists():  # a fresh install: the local store is made on first use
            gateway.mlflow_ready()
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=TIMEOUT_SECONDS) as db:
            db.execute("SELECT 1")
        return "local store"
    return parsed.scheme or "unknown"


def check_storage() -> str:
    """List a probe folder: an object store must answer for its bucket (a missing bucket or a dead server raises),
    a local disk for its folder (a folder not made yet is still a working disk)."""
    try:
        default_storage.listdir("readyz-probe/")
    except FileNotFoundError:
        pass
    return type(getattr(default_storage, "_wrapped", default_storage)).__name__


def check_static() -> str:
    """The manifest the pages' {% static %} tags read: loaded when the process started, so a process started before
    `collectstatic` answers 500 on every page until it is restarted."""
    from django.contrib.staticfiles.storage import staticfiles_storage  # lazy: storage reads settings on import

    hashed = getattr(staticfiles_storage, "hashed_files", None)
    if hashed is None:
        return "plain files (no manifest)"
    if not hashed:
        raise RuntimeError("static files manifest missing or empty: run collectstatic, then restart")
    return f"manifest of {len(hashed)} files"


def check_model() -> str:
    """/readyz asks a web process to hold the model it will serve: the probe is what loads it (and torch)."""
    from registry import serving  # lazy: the URLconf imports this module, and migrate's checks import the URLconf

    version = serving.production_version_loaded() or serving.warm_up()
    if version is None:
        if serving.serving_config() is None:
            return "none registered yet (uploads wait for the first model)"
        raise RuntimeError("Production model could not be loaded")
    return f"{settings.MLFLOW_MODEL_NAME} v{version}"


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "broker": check_broker,
    "mlflow": check_mlflow,
    "storage": check_storage,
    "static": check_static,
    "model": check_model,
}


def _model_loaded() -> bool:
    """Whether this process holds a Production model; one that never imported registry.serving holds none."""
    serving = sys.modules.get("registry.serving")
    return serving is not None and serving.production_version_loaded() is not None


def readiness() -> list[CheckResult]:
    """Every check, in order. The model is only loaded when MLflow answered: loading from a dead tracking server
    would retry for minutes, and its state is then reported, not re-tested."""
    results: list[CheckResult] = []
    for name, check in CHECKS.items():
        started = time.monotonic()
        mlflow_down = any(result.name == "mlflow" and not result.ok for result in results)
        if name == "model" and mlflow_down and not _model_loaded():
            results.append(CheckResult(name, True, "not checked: MLflow is down", 0.0))
            continue
        try:
            detail, ok = check(), True
        except Exception as error:  # any failure of a dependency is "down", named with its error
            detail, ok = f"{type(error).__name__}: {str(error)[:200]}", False
        results.append(CheckResult(name, ok, detail, round(time.monotonic() - started, 3)))
    return results


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    if not metrics_allowed(request):
        return JsonResponse(
            {"error": "/readyz answers private networks or the METRICS_TOKEN bearer token (see docs/configuration.md)"},
            status=403,
        )
    results = readiness()
    down = [result.name for result in results if not result.ok]
    body = {
        "status": "ok" if not down else "unavailable: " + ", ".join(down) + " down",
        "checks": {r.name: {"ok": r.ok, "detail": r.detail, "seconds": r.seconds} for r in results},
    }
    return JsonResponse(body, status=503 if down else 200)
