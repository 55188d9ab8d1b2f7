"""The settings module reads everything from the environment; production settings pass `check --deploy`."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_"))}
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
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = run_manage("check", env_extra={"DJANGO_DEBUG": "0", "COINSITE_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_embedded_default_uses_sqlite_eager_celery_and_local_mlflow(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.MLFLOW_TRACKING_URI.split(':')[0])"
    )
    result = run_manage("shell", "-c", code, env_extra={"COINSITE_VAR_DIR": str(tmp_path)})
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
    result = run_manage("check", env_extra={"COINSITE_VAR_DIR": str(var)})

    # then the embedded default's folders are there
    assert result.returncode == 0, result.stdout + result.stderr
    assert (var / "staticfiles").is_dir()
