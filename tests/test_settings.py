"""The settings module reads everything from the environment; production settings pass `check --deploy`; manage.py
runs local settings by default while the WSGI entry, Celery and the Procfiles run production ones; every response
carries a Content-Security-Policy."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parent.parent
MAKE_RUN = {"DJANGO_DEBUG": "1"}  # what `make run` sets


def run_manage(*args: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    """manage.py as it starts outside the test suite: without pytest's PYTEST_VERSION (the settings' TESTING flag)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_")) and k != "PYTEST_VERSION"
    }
    env.update(env_extra)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_check_deploy_is_clean_with_production_variables(tmp_path):
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env_extra={
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "example.org",
            "COINSITE_VAR_DIR": str(tmp_path),
            "CACHE_URL": "redis://127.0.0.1:6379/1",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_reports_a_per_process_throttle_cache(tmp_path):
    # given production variables but no CACHE_URL (the embedded default's per-process memory cache)
    production = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "example.org",
        "COINSITE_VAR_DIR": str(tmp_path),
    }

    # when the deployment checks run, and the plain checks (as migrate runs them)
    deploy = run_manage("check", "--deploy", env_extra=production)
    plain = run_manage("check", env_extra=production)

    # then --deploy fails naming the cache and the fix; the release step's checks are not held up by it
    assert deploy.returncode != 0
    assert "coinsite.E001" in deploy.stderr and "LocMemCache, private to each process" in deploy.stderr
    assert "Set CACHE_URL" in deploy.stderr
    assert plain.returncode == 0, plain.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = run_manage("check", env_extra={"DJANGO_DEBUG": "0", "COINSITE_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_embedded_default_uses_sqlite_eager_celery_and_local_mlflow(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.MLFLOW_TRACKING_URI.split(':')[0])"
    )
    result = run_manage("shell", "-c", code, env_extra={"COINSITE_VAR_DIR": str(tmp_path), **MAKE_RUN})
    assert result.stdout.split()[-3:] == ["django.db.backends.sqlite3", "True", "sqlite"], result.stderr


def test_distributed_variables_switch_to_postgres_redis_and_mlflow_server(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.MLFLOW_TRACKING_URI)"
    )
    result = run_manage(
        "shell",
        "-c",
        code,
        env_extra={
            "COINSITE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/coinsite",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
            **MAKE_RUN,
        },
    )
    assert result.stdout.split()[-3:] == ["django.db.backends.postgresql", "False", "http://127.0.0.1:5000"], (
        result.stderr
    )


def test_importing_the_settings_creates_no_directory(tmp_path):
    # given a var directory that does not exist yet
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_"))}
    env["COINSITE_VAR_DIR"] = str(var)

    # when only importing the settings (as a linter or a tool does)
    result = subprocess.run(
        [sys.executable, "-c", "import coinsite.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    # then nothing was written to disk
    assert result.returncode == 0, result.stderr
    assert not var.exists()


def test_django_start_up_creates_the_var_and_static_directories(tmp_path):
    # given a var directory that does not exist yet / when Django starts (any manage.py command)
    var = tmp_path / "var"
    result = run_manage("check", env_extra={"COINSITE_VAR_DIR": str(var), **MAKE_RUN})

    # then the embedded default's folders are there
    assert result.returncode == 0, result.stdout + result.stderr
    assert (var / "staticfiles").is_dir()


def run_python(code: str, *, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    """`python -c code` with the environment run_manage gives (no DJANGO_*, no pytest flag)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_")) and k != "PYTEST_VERSION"
    }
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


SHOW = "from django.conf import settings as s; print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE)"


def test_debug_is_off_and_https_on_unless_asked_for(tmp_path):
    # given no DJANGO_DEBUG, only a secret key (as a deployment that forgets DEBUG), through the WSGI entry
    code = "import coinsite.wsgi; " + SHOW
    production = run_python(
        code, env_extra={"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "COINSITE_VAR_DIR": str(tmp_path)}
    )
    # then debug pages are off and the site is HTTPS only
    assert production.stdout.split()[-3:] == ["False", "True", "True"], production.stderr

    # and a plain-http deployment on localhost (make run-distributed) turns HTTPS off with one switch
    plain_http = run_python(
        code,
        env_extra={
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_HTTPS": "0",
            "COINSITE_VAR_DIR": str(tmp_path),
        },
    )
    assert plain_http.stdout.split()[-3:] == ["False", "False", "False"], plain_http.stderr


def test_manage_py_runs_local_settings_by_default(tmp_path):
    # given no variable at all (a developer's `python manage.py ...` outside make)
    code = "from django.conf import settings as s; print(s.DEBUG, s.SECRET_KEY == 'dev-only-insecure-key')"
    local = run_manage("shell", "-c", code, env_extra={"COINSITE_VAR_DIR": str(tmp_path)})

    # then DEBUG is on with the dev key, and the README's drf_create_token starts without a traceback
    assert local.returncode == 0 and local.stdout.split()[-2:] == ["True", "True"], local.stderr
    token = run_manage("drf_create_token", "--help", env_extra={"COINSITE_VAR_DIR": str(tmp_path)})
    assert token.returncode == 0 and "Traceback" not in token.stderr, token.stderr
    # and an explicit DJANGO_DEBUG=0 still gets production settings through manage.py
    assert "DJANGO_SECRET_KEY" in run_manage("check", env_extra={"DJANGO_DEBUG": "0"}).stderr


@pytest.mark.parametrize("entry", ["coinsite.wsgi", "coinsite.celery"])
def test_the_wsgi_entry_and_celery_default_to_production_settings(entry, tmp_path):
    # given no DJANGO_DEBUG and no secret key: gunicorn (Procfile web) and Celery (workers, beat) start that way
    result = run_python(f"import {entry}; " + SHOW, env_extra={"COINSITE_VAR_DIR": str(tmp_path)})

    # then they refuse to start without the production secret (they never fall back to the dev key)
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr
    with_key = run_python(
        f"import {entry}; " + SHOW,
        env_extra={"COINSITE_VAR_DIR": str(tmp_path), "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)},
    )
    assert with_key.stdout.split()[-3:] == ["False", "True", "True"], with_key.stderr


def procfile_entries(name: str) -> dict[str, str]:
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    return {key.strip(): command.strip() for key, _, command in (line.partition(":") for line in lines if line)}


@pytest.mark.parametrize("name", ["Procfile", "Procfile.dev"])
def test_every_procfile_process_that_runs_manage_py_defaults_to_production(name):
    for process, command in procfile_entries(name).items():
        if "manage.py" in command:
            assert command.startswith("export DJANGO_DEBUG=${DJANGO_DEBUG:-0} && "), (name, process)
        else:  # gunicorn, celery, mlflow, rclone: none goes through manage.py's local default
            assert "gunicorn coinsite.wsgi" in command or "celery -A coinsite" in command or process in {"s3", "mlflow"}


@pytest.mark.slow
def test_the_procfile_release_step_prepares_production_static_files(tmp_path):
    # given the release step as a platform runs it: no DJANGO_DEBUG, a secret key
    command = procfile_entries("Procfile")["release"].replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_"))}
    env.pop("PYTEST_VERSION", None)
    env.update({"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "COINSITE_VAR_DIR": str(tmp_path)})

    result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    # then collectstatic ran with production settings: whitenoise's manifest exists (DEBUG would skip it)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "staticfiles" / "staticfiles.json").is_file()


def test_the_test_suite_runs_production_defaults_over_plain_http():
    from coinsite import settings as module

    assert module.TESTING and not module.DEBUG and not module.HTTPS
    assert module.STORAGES["staticfiles"]["BACKEND"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_every_response_carries_a_content_security_policy(client, db):
    # when two pages are fetched
    first = client.get(reverse("login"))
    second = client.get(reverse("login"))

    # then each has a strict policy with its own nonce, and the nonce is the one templates get
    policy = first.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    nonce = first.wsgi_request.csp_nonce
    assert f"'nonce-{nonce}'" in policy
    assert first.context["csp_nonce"] == nonce
    assert second.wsgi_request.csp_nonce != nonce
    # not only pages: a 404 and a static file too
    assert "Content-Security-Policy" in client.get("/no-such-page/").headers


def test_debug_pages_of_make_run_go_without_the_policy_to_stay_readable(client, db, settings):
    # given DEBUG on, as `make run` sets it
    settings.DEBUG = True

    # then Django's technical 404 (inline styles, no nonce) has no policy, while the site's pages keep it
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404 and "Content-Security-Policy" not in missing.headers
    assert "Content-Security-Policy" in client.get(reverse("login")).headers


def test_production_defaults_accept_no_testserver_host_and_print_no_mail(tmp_path):
    # given production's defaults (a secret key, nothing else), and make run's DEBUG
    show = "import coinsite.wsgi; from django.conf import settings as s; print(s.ALLOWED_HOSTS, s.EMAIL_BACKEND)"
    production = run_python(
        show, env_extra={"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "COINSITE_VAR_DIR": str(tmp_path)}
    )
    debug = run_python(show, env_extra={"DJANGO_DEBUG": "1", "COINSITE_VAR_DIR": str(tmp_path)})

    # then production neither answers Host: testserver nor prints password-reset links to its log
    assert "testserver" not in production.stdout and "console" not in production.stdout, production.stderr
    assert "dummy" in production.stdout
    assert "testserver" in debug.stdout and "console" in debug.stdout, debug.stderr
