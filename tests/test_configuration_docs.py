"""docs/configuration.md names every environment variable the code reads, and only those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("coinsite", "registry", "predictions", "training", "gunicorn.conf.py", "manage.py")
# env("X"), env.int("X" ...), os.environ.get("X"), os.environ["X"], os.environ.setdefault("X"), os.getenv("X")
READ = re.compile(
    r"""(?:\benv(?:\.\w+)?\(|os\.environ(?:\.get|\.setdefault)?[\[(]|os\.getenv\()\s*["']([A-Z][A-Z0-9_]+)["']"""
)
# A module constant naming a variable it reads (coinsite/worker_metrics.py: PORT_VARIABLE = "...").
NAMED = re.compile(r"""^[A-Z_]+_VARIABLE\s*=\s*["']([A-Z][A-Z0-9_]+)["']""", re.MULTILINE)
# Set by the code for the libraries it starts, not settings a deployment chooses.
SET_NOT_READ = {
    "DJANGO_SETTINGS_MODULE",
    "MLFLOW_DISABLE_TELEMETRY",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
    "MLFLOW_CONFIGURE_LOGGING",
}
# Documented because a deployment sets them, read by a library rather than by this code (boto3's credentials).
READ_BY_LIBRARIES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def variables_read() -> set[str]:
    names: set[str] = set()
    for source in SOURCES:
        path = ROOT / source
        for file in [path] if path.is_file() else path.rglob("*.py"):
            if "migrations" not in file.parts:
                text = file.read_text()
                names.update(READ.findall(text), NAMED.findall(text))
    return (names - SET_NOT_READ) | READ_BY_LIBRARIES


def variables_documented() -> set[str]:
    table = [line for line in (ROOT / "docs" / "configuration.md").read_text().splitlines() if line.startswith("| `")]
    return {name for line in table for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])}


def test_every_variable_the_code_reads_is_documented():
    assert sorted(variables_read() - variables_documented()) == []


def test_every_documented_variable_is_read_somewhere():
    assert sorted(variables_documented() - variables_read()) == []
