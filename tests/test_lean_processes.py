"""Processes that neither serve nor train load no ML stack: torch, torchvision, onnxruntime and MLflow cost 840 MB of
RSS where ``django.setup()`` needs about 100 MB, and ``migrate``, ``collectstatic``, beat and page-only web workers
never use them. Each case runs in a fresh interpreter (this test process has long imported torch) and reports which
of them it imported; ``make bench-processes`` prints the peak RSS figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "torchvision", "onnxruntime", "mlflow", "training.ml.synthetic", "registry.serving")

SETUP_AND_PAGES = """
import json, os, sys
sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coinsite.settings")
import django
django.setup()
heavy = {"setup": [m for m in HEAVY if m in sys.modules]}
from django.core.management import call_command
call_command("check", verbosity=0)  # what manage.py migrate and collectstatic run first (it imports the URLconf)
call_command("migrate", "--noinput", verbosity=0)
heavy["migrate"] = [m for m in HEAVY if m in sys.modules]
from django.contrib.auth import get_user_model
from django.test import Client
client = Client()
statuses = [client.get("/accounts/login/").status_code]
client.force_login(get_user_model().objects.create_superuser("owner", password="x-9f8e7d6c"))
statuses += [client.get(path).status_code for path in ("/", "/admin/", "/admin/training/trainingrun/")]
heavy["pages"] = [m for m in HEAVY if m in sys.modules]
print(json.dumps({"heavy": heavy, "statuses": statuses}))
"""


def run_fresh(code: str, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        "COINSITE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DJANGO_DEBUG": "1",
    }
    env.pop("CELERY_BROKER_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_setup_migrate_and_pages_import_no_ml_stack(tmp_path):
    # given a fresh process on its own database
    # when it sets Django up, runs the checks and migrate, and answers pages (sign-in, coin list, the admin)
    report = run_fresh(SETUP_AND_PAGES, tmp_path)

    # then every page answered, and none of those steps imported torch, onnxruntime, MLflow or serving
    assert report["statuses"] == [200, 200, 200, 200]
    assert report["heavy"] == {"setup": [], "migrate": [], "pages": []}


def test_celery_app_imports_no_ml_stack(tmp_path):
    # given a fresh process as beat starts it: the Celery app, Django set up, the tasks discovered
    code = """
import json, os, sys
sys.path.insert(0, os.getcwd())
from coinsite.celery import app
app.loader.import_default_modules()
print(json.dumps({"heavy": [m for m in HEAVY if m in sys.modules], "tasks": len(app.tasks)}))
"""
    # when its modules are imported
    report = run_fresh(code, tmp_path)

    # then the tasks are registered without torch, onnxruntime, MLflow or serving
    assert report["tasks"] > 10
    assert report["heavy"] == []
