"""Log lines (text and JSON), Sentry turned on by SENTRY_DSN, and a production Procfile that runs no demo."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from coinsite.logformat import JsonFormatter, formatter_config

ROOT = Path(__file__).resolve().parents[1]


def configured_logger(log_format: str, name: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger wired as LOGGING wires the root one, writing to a buffer."""
    stream = io.StringIO()
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter_config(log_format)},
        "handlers": {"buffer": {"class": "logging.StreamHandler", "formatter": "default", "stream": stream}},
        "loggers": {name: {"handlers": ["buffer"], "level": "INFO", "propagate": False}},
    }
    logging.config.dictConfig(config)
    return logging.getLogger(name), stream


# --- log lines --------------------------------------------------------------------------------------------------------


def test_text_lines_carry_time_level_and_logger_name():
    logger, stream = configured_logger("text", "coinsite.test.text")

    logger.warning("queue %s is long", "inference")

    line = stream.getvalue().strip()
    assert re.match(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING coinsite\.test\.text \[\d+\] queue inference is long$", line
    )


def test_json_lines_are_one_object_per_line_with_time_level_logger_and_extras():
    logger, stream = configured_logger("json", "coinsite.test.json")

    logger.info("stored %d predictions", 3, extra={"version": 7, "request": object()})
    try:
        raise ValueError("a bad photo\non two lines")
    except ValueError:
        logger.exception("predict failed")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the traceback and the message's line break stay inside their line
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "coinsite.test.json"
    assert first["message"] == "stored 3 predictions"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["time"])
    assert first["version"] == 7 and first["request"].startswith("<object object")
    assert first["process"] == os.getpid()
    assert "exception" not in first and "args" not in first and "msg" not in first
    assert second["level"] == "ERROR" and second["message"] == "predict failed"
    assert "Traceback" in second["exception"] and "ValueError: a bad photo\non two lines" in second["exception"]


def test_log_format_json_is_case_and_space_insensitive_and_anything_else_is_text():
    assert formatter_config(" JSON ") == {"()": JsonFormatter}
    assert formatter_config("text") == formatter_config("logfmt") == {"format": formatter_config("text")["format"]}


def run_python(code: str, **env: str) -> str:
    """`code` in a fresh interpreter with Django set up from the environment given (settings are read once, at
    import, so a different LOG_FORMAT or SENTRY_DSN needs a process of its own)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("LOG_FORMAT", "SENTRY_DSN")}
    environment.update({"DJANGO_SETTINGS_MODULE": "coinsite.settings", **env})
    prelude = "import django; django.setup(); "
    result = subprocess.run(
        [sys.executable, "-c", prelude + code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_log_format_json_makes_django_and_celery_workers_write_json_lines():
    # given the settings read with LOG_FORMAT=json; when Django has logged, and then Celery's logging set-up (what
    # a worker or beat runs at start) has configured logging again from the same settings
    output = run_python(
        "import logging; logging.getLogger('predictions.test').warning('from django');"
        "from coinsite.celery import app;"
        "app.log.setup_logging_subsystem(loglevel='INFO');"
        "logging.getLogger('celery.worker.strategy').info('Task x[1] received')",
        LOG_FORMAT="json",
    )

    # then every line is a JSON object with its logger's name
    entries = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert [(e["logger"], e["message"]) for e in entries] == [
        ("predictions.test", "from django"),
        ("celery.worker.strategy", "Task x[1] received"),
    ]


# --- Sentry -----------------------------------------------------------------------------------------------------------


def test_sentry_starts_only_with_a_dsn_with_django_and_celery_and_without_personal_data_or_traces():
    code = (
        "import json, sentry_sdk; client = sentry_sdk.get_client(); o = client.options;"
        "print(json.dumps({'active': client.is_active(), 'dsn': o.get('dsn'), 'pii': o.get('send_default_pii'),"
        " 'traces': o.get('traces_sample_rate'), 'body': o.get('max_request_body_size'),"
        " 'integrations': sorted(client.integrations)}))"
    )
    # a DSN whose port nothing listens on: nothing is sent (no event is raised here anyway)
    with_dsn = json.loads(run_python(code, SENTRY_DSN="http://public@127.0.0.1:9/1").strip().splitlines()[-1])
    without = json.loads(run_python(code).strip().splitlines()[-1])

    assert with_dsn["active"] and with_dsn["dsn"] == "http://public@127.0.0.1:9/1"
    assert {"django", "celery"} <= set(with_dsn["integrations"])
    assert with_dsn["pii"] is False and with_dsn["traces"] == 0.0 and with_dsn["body"] == "never"
    assert not without["active"]


# --- deployment -------------------------------------------------------------------------------------------------------


def procfile(name: str) -> dict[str, str]:
    entries = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        process, _, command = line.partition(":")
        if command.strip():
            entries[process.strip()] = command.strip()
    return entries


def test_the_production_procfile_runs_no_demo_and_prints_no_password():
    text = (ROOT / "Procfile").read_text(encoding="utf-8").lower()

    for forbidden in ("bootstrap_demo", "createsuperuser", "password", "demo"):
        assert forbidden not in text, forbidden


def test_the_production_procfile_releases_then_runs_web_workers_and_beat():
    entries = procfile("Procfile")

    assert set(entries) == {"release", "web", "inference", "training", "housekeeping", "beat"}
    assert "manage.py migrate" in entries["release"] and "manage.py collectstatic" in entries["release"]
    assert "gunicorn coinsite.wsgi" in entries["web"]
    assert "-Q inference" in entries["inference"] and "-Q training" in entries["training"]
    assert "-Q housekeeping" in entries["housekeeping"]  # the orphan sweep, off the inference worker


def test_make_run_distributed_starts_the_demo_procfile_with_the_production_workers():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    dev, production = procfile("Procfile.dev"), procfile("Procfile")
    processes = re.search(r"^DIST_PROCESSES := (.+)$", makefile, re.M).group(1).split()

    assert "honcho -f Procfile.dev start $(DIST_PROCESSES)" in makefile
    assert set(processes) <= set(dev)
    assert "bootstrap_demo" in dev["web"]
    for worker in ("inference", "training", "housekeeping", "beat"):
        assert dev[worker] == production[worker]  # the demo differs in its web and its MLflow, not in its workers


@pytest.mark.parametrize("package", ["pillow", "gunicorn", "prometheus_client", "sentry-sdk"])
def test_runtime_requirements_pin_the_installed_version(package):
    text = (ROOT / "requirements" / "runtime.in").read_text(encoding="utf-8")
    lines = [line.split(" #")[0].strip() for line in text.splitlines()]

    assert f"{package}=={version(package)}" in lines
