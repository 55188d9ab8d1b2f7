"""Shared test setup: isolated media and MLflow per session, role users, and the real servers of the integration pass."""

from __future__ import annotations

import os
import socket

import pytest

from tests.factories import UserFactory

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# In CI (and whenever COINSITE_REQUIRE_INTEGRATION=1) a missing PostgreSQL/Redis fails the run instead of skipping.
REQUIRE_INTEGRATION = os.environ.get("COINSITE_REQUIRE_INTEGRATION") == "1" or os.environ.get("CI") == "true"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


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
