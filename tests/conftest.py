"""Shared test setup: isolated media and MLflow per session, role users, and the real servers of the integration pass."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

import pytest
from pytest_django.live_server_helper import LiveServer

from tests.factories import UserFactory

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import torch  # noqa: E402

# One intra-op thread: the suite runs servers and worker processes beside itself on 2 cores, and OpenMP's spinning
# threads then slow tiny training steps down 10-30x (measured: 2.8 s vs 0.1 s per step). Also makes runs repeatable.
torch.set_num_threads(1)

# Django's default PBKDF2 hasher costs ~0.45 s per password on 2 shared cores, and every user a test creates hashes one
# (two admin test files took 112 s with it, 11 s with MD5). Tests only: the production settings keep the default.
TEST_PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Debian's Chromium (`make browser-deps`), never a browser Playwright downloads; flags for a headless CI container.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # screenshots (git-ignored), kept by CI

# In CI (and whenever COINSITE_REQUIRE_INTEGRATION=1) a missing PostgreSQL/Redis fails the run instead of skipping.
REQUIRE_INTEGRATION = os.environ.get("COINSITE_REQUIRE_INTEGRATION") == "1" or os.environ.get("CI") == "true"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def pytest_configure(config) -> None:
    from django.conf import settings

    settings.PASSWORD_HASHERS = TEST_PASSWORD_HASHERS


@pytest.fixture(scope="session", autouse=True)
def collected_static():
    """The suite runs the production static files setup (DEBUG off: whitenoise's manifest storage), so every page
    needs STATIC_ROOT's manifest, exactly as a deployment does: collectstatic once per session, about 1.5 s on the
    2-core box (a lock keeps parallel workers from writing it together)."""
    from django.conf import settings
    from django.core.management import call_command

    root = Path(settings.STATIC_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(root.parent / ".collectstatic.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        call_command("collectstatic", "--noinput", verbosity=0)
    COLLECTSTATIC_SECONDS.append(time.perf_counter() - started)
    return root


COLLECTSTATIC_SECONDS: list[float] = []  # shown in the terminal summary


def pytest_terminal_summary(terminalreporter) -> None:
    if COLLECTSTATIC_SECONDS:
        terminalreporter.write_line(f"coinsite: collectstatic took {COLLECTSTATIC_SECONDS[0]:.1f} s")


@pytest.fixture(scope="session")
def live_server(request, collected_static):
    """pytest-django's live server, its static files served as in production: by WhiteNoise from STATIC_ROOT. (The
    default static handler looks files up in the source folders by their plain names, so the manifest's hashed names
    that the pages link would answer 404.)"""
    addr = request.config.getvalue("liveserver") or os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost"
    server = LiveServer(addr, start=False)
    server.thread.static_handler = _no_static_handler
    server.start()
    yield server
    server.stop()


def _no_static_handler(application):
    """The live server's 'static handler': none, the application (WhiteNoise in its middleware) serves /static/."""
    return application


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread in every test, put back afterwards (a test or library that changes it cannot slow the rest
    of the suite down: on a shared 2-core box OpenMP spin-waiting makes two threads ~25x slower than one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def browser(monkeypatch):
    """A headless Debian Chromium driven by Playwright. A missing browser fails the test instead of skipping it, so
    the browser journeys are really checked wherever the suite runs. Playwright's sync API keeps an event loop in
    this thread; Django would then refuse the test's own ORM reads, so they are allowed here (the live server runs
    in its own thread regardless)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def pytest_report_header(config) -> list[str]:
    try:
        from django.conf import settings

        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        eager = settings.CELERY_TASK_ALWAYS_EAGER
    except Exception:  # pragma: no cover - only when Django is not configured (plain ML runs)
        return []
    return [f"coinsite: database={engine} celery_eager={eager} require_integration={REQUIRE_INTEGRATION}"]


def server_reachable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def require_server(name: str, host: str, port: int) -> None:
    if server_reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if REQUIRE_INTEGRATION:
        pytest.fail(message + " (integration tests are required here; see DEVELOPERS.md to start it)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def isolated_media(settings, tmp_path):
    """Each test writes photos to its own folder, so 'no file left behind' can be checked exactly."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="session")
def mlflow_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(autouse=True)
def isolated_mlflow(settings, mlflow_dir):
    """One MLflow store per test session (creating a SQLite store costs seconds), never the developer's var/."""
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{mlflow_dir / 'mlflow.db'}"
    settings.MLFLOW_ARTIFACT_ROOT = str(mlflow_dir / "artifacts")
    return mlflow_dir


@pytest.fixture
def collector(db):
    return UserFactory(username="collector1")


@pytest.fixture
def other_collector(db):
    return UserFactory(username="collector2")


@pytest.fixture
def curator(db):
    return UserFactory(username="curator1", roles=["curator"], is_staff=True)


@pytest.fixture
def model_owner(db):
    return UserFactory(username="owner1", roles=["model_owner"], is_staff=True)


@pytest.fixture
def redis_url():
    require_server("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/15"


@pytest.fixture
def postgres_only(settings):
    """Integration tests run in the PostgreSQL pass (make test runs the suite twice: SQLite, then PostgreSQL)."""
    vendor = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in vendor:
        message = "runs in the PostgreSQL pass (DATABASE_URL=postgres://...)"
        if REQUIRE_INTEGRATION:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def postgres_row_locks(settings):
    """Race tests that need real row locks (SELECT ... FOR UPDATE, concurrent UPDATEs): SQLite locks the whole file,
    so there they would prove nothing. They are not marked integration: the SQLite pass collects them and says, in
    its skip summary (-ra), where they run; the PostgreSQL pass (make test-postgres) runs them."""
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("runs in the PostgreSQL pass: needs row locks")


# batch_size=2: enough optimiser steps on 16 coins that BatchNorm statistics move and the model tells coins apart.
# The seed's regression head: these pipeline tests need any real model, fast; the date reader has its own tests.
TINY_OVERRIDES = [
    "head=regression",
    "init_from=null",
    "lr=0.003",
    "image_size=32",
    "epochs=2",
    "folds=2",
    "batch_size=2",
    "patience=0",
    "head_hidden=32",
    "serve_int8=false",  # the int8 graph has its own tests (tests/training/ml/test_quantize.py)
]


@pytest.fixture(scope="session")
def tiny_fit():
    """A tiny but real K-fold fit on generated coins (seconds on CPU), shared by the tests that need a model."""
    return _fit_generated(TINY_OVERRIDES, count=16, seed=7)


def _fit_generated(overrides: list[str], *, count: int, seed: int):
    """A real K-fold fit (configs/default.yaml plus ``overrides``) on ``count`` generated 96 px coins."""
    from training.ml.config import load_config
    from training.ml.data import CoinSample
    from training.ml.kfold import fit
    from training.ml.synthetic import iter_coins

    samples = [
        CoinSample(front=front, back=back, year=year, key=str(i))
        for i, (front, back, year) in enumerate(iter_coins(count, seed=seed, size=96))
    ]
    return fit(load_config(overrides=overrides), samples, progress=False)


@pytest.fixture(scope="session")
def registered_tiny_versions(tiny_fit, mlflow_dir):
    """Two versions of the tiny model registered in the session's MLflow store: (first, second)."""
    from training.ml import tracking

    tracking.configure(
        f"sqlite:///{mlflow_dir / 'mlflow.db'}", artifact_root=str(mlflow_dir / "artifacts"), experiment="coin-year"
    )
    versions = []
    for run_name in ("tiny-a", "tiny-b"):
        with tracking.TrainingTracker(tiny_fit.config, experiment="coin-year", run_name=run_name) as tracker:
            tracker.log_result(tiny_fit, manifest=[])
            tracker.log_model(tiny_fit)
            versions.append(tracker.register("coin-year"))
    return tuple(versions)


@pytest.fixture
def production_model(registered_tiny_versions, isolated_mlflow, settings):
    """A real (tiny) model registered as `coin-year` with alias production; yields its version number.

    The process-wide inference holder is reset around the test, so it loads what the alias says now."""
    from registry import serving as inference
    from registry.gateway import mlflow_ready
    from training.ml import tracking

    settings.MLFLOW_MODEL_NAME = "coin-year"
    mlflow_ready()
    version = registered_tiny_versions[0]
    tracking.set_alias("coin-year", "production", version)
    inference.reset()
    yield version
    inference.reset()
    tracking.set_alias("coin-year", "production", version)


@pytest.fixture
def no_model(settings):
    """A model name with nothing registered: as on a fresh install before the first training."""
    from registry import serving as inference

    settings.MLFLOW_MODEL_NAME = "coin-year-nothing-registered"
    inference.reset()
    yield
    inference.reset()


# The date reader from the committed base, fine-tuned a little: what `make run` serves, at test size.
TINY_READER_OVERRIDES = ["image_size=64", "epochs=1", "folds=2", "batch_size=4", "patience=0", "serve_int8=false"]


@pytest.fixture(scope="session")
def tiny_reader_fit():
    """A tiny K-fold fine-tune of the base date reader on generated coins (seconds on CPU)."""
    return _fit_generated(TINY_READER_OVERRIDES, count=12, seed=8)


@pytest.fixture
def reader_production_model(tiny_reader_fit, registered_tiny_versions, isolated_mlflow, settings):
    """The tiny date reader registered as a version of `coin-year` with alias production; yields its version."""
    from registry import serving as inference
    from registry.gateway import mlflow_ready
    from training.ml import tracking

    settings.MLFLOW_MODEL_NAME = "coin-year"
    mlflow_ready()
    with tracking.TrainingTracker(tiny_reader_fit.config, experiment="coin-year", run_name="tiny-reader") as tracker:
        tracker.log_result(tiny_reader_fit, manifest=[])
        tracker.log_model(tiny_reader_fit)
        version = tracker.register("coin-year")
    tracking.set_alias("coin-year", "production", version)
    inference.reset()
    yield version
    inference.reset()
    tracking.set_alias("coin-year", "production", registered_tiny_versions[0])


@pytest.fixture
def model_name(settings):
    """A model name of this test alone: the session's MLflow store is shared, the registry state must not be."""
    import uuid

    from registry import serving

    settings.MLFLOW_MODEL_NAME = f"coin-year-test-{uuid.uuid4().hex[:8]}"
    settings.EVALUATION_SHARE = 0.25
    serving.reset()
    yield settings.MLFLOW_MODEL_NAME
    serving.reset()


@pytest.fixture
def two_versions(production_model, registered_tiny_versions):
    """Mirror rows of the two registered tiny versions: (Production, candidate), with the history that put the first
    one in production."""
    from registry.models import ModelVersion, Promotion
    from registry.services import model_version_mirror

    first, second = registered_tiny_versions
    current = model_version_mirror(version=first)
    candidate = model_version_mirror(version=second)
    ModelVersion.objects.filter(pk=current.pk).update(is_production=True, aliases=["production"])
    ModelVersion.objects.filter(pk=candidate.pk).update(is_production=False, aliases=[])
    Promotion.objects.create(to_version=current, action=Promotion.Action.INITIAL)
    return current, candidate


@pytest.fixture
def rates(settings):
    """Set some throttle rates for this test (the others keep their defaults)."""

    def set_rates(**scopes: str) -> None:
        current = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**current, **scopes}}

    return set_rates


@pytest.fixture(autouse=True)
def fresh_cache():
    """The API's throttles count calls in the cache: every test starts with none counted, so no test is throttled
    by the calls of the tests before it."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
