"""Peak RSS of the Django processes that neither serve nor train, and whether any of them loaded the ML stack.

``make bench-processes`` runs each in a fresh process on a throw-away SQLite database and var folder, reads its peak
resident set size from the kernel when it exits (``os.wait4``), and prints one line per process plus a summary line
``processes: key=MB ...``. The target is 200 MB each; ``django.setup()`` alone reached 840 MB while
``predictions.models`` imported the ensemble (torch, torchvision, the coin generator) and the registry's gateway
imported MLflow (160 MB on its own).

- ``migrate`` and ``collectstatic``: the release step of every deployment (``manage.py``, production settings);
- ``beat``: ``celery -A coinsite beat`` with the database scheduler, stopped after BEAT_SECONDS (the broker is
  kombu's in-memory transport, so nothing is sent anywhere);
- ``page``: ``django.setup()``, then the sign-in page, a collector's coin list and the admin's index through
  Django's test client, in one process, as a page-only web worker answers them.

Each child prints which of torch, torchvision, onnxruntime and mlflow it imported (``page`` and a ``python -c``
wrapper around ``manage.py`` for the other two); beat is checked by tests/test_lean_processes.py's setup check,
since a Celery process cannot be wrapped the same way. Figures are noisy on a shared machine (a few MB).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TARGET_MB = 200
BEAT_SECONDS = 8.0
HEAVY = ("torch", "torchvision", "onnxruntime", "mlflow")

# Runs a manage.py command in this process, then says which heavy modules it imported.
MANAGE = (
    "import sys, runpy; sys.argv = ['manage.py', *sys.argv[1:]];\n"
    "try:\n    runpy.run_path('manage.py', run_name='__main__')\n"
    f"finally:\n    print('heavy:', ','.join(m for m in {HEAVY!r} if m in sys.modules) or '-')\n"
)

PAGE = (
    "import os, sys, django; sys.path.insert(0, '.')\n"
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'coinsite.settings'); django.setup()\n"
    "from django.contrib.auth import get_user_model\n"
    "from django.test import Client\n"
    "client = Client()\n"
    "statuses = [client.get('/accounts/login/').status_code]\n"
    "collector = get_user_model().objects.create_user('rss-collector', password='x-9f8e7d6c')\n"
    "client.force_login(collector)\n"
    "statuses.append(client.get('/').status_code)\n"
    "owner = get_user_model().objects.create_superuser('rss-owner', password='x-9f8e7d6c')\n"
    "client.force_login(owner)\n"
    "statuses.append(client.get('/admin/').status_code)\n"
    "print('statuses:', statuses)\n"
    f"print('heavy:', ','.join(m for m in {HEAVY!r} if m in sys.modules) or '-')\n"
)


def run_measured(command: list[str], env: dict[str, str], *, stop_after: float | None = None) -> tuple[float, str]:
    """(peak RSS in MB, stdout) of ``command``; with ``stop_after`` it is sent SIGTERM after that many seconds."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if stop_after is not None:
        time.sleep(stop_after)
        process.send_signal(signal.SIGTERM)
    output = process.stdout.read() if process.stdout else ""
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if stop_after is None and process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{output[-2000:]}")
    return usage.ru_maxrss / 1024, output


def heavy_of(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("heavy:")]
    return lines[-1].split(":", 1)[1].strip() if lines else "?"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="coinsite-rss-") as folder:
        env = {
            **os.environ,
            "COINSITE_VAR_DIR": folder,
            "DATABASE_URL": f"sqlite:///{folder}/db.sqlite3",
            "DJANGO_DEBUG": "0",
            "DJANGO_HTTPS": "0",
            "DJANGO_SECRET_KEY": "process-rss-" + "k" * 50,
        }
        env.pop("CELERY_BROKER_URL", None)
        results: dict[str, tuple[float, str]] = {}
        for name, args in (("migrate", ["migrate", "--noinput"]), ("collectstatic", ["collectstatic", "--noinput"])):
            rss, output = run_measured([PYTHON, "-c", MANAGE, *args], env)
            results[name] = (rss, heavy_of(output))
        beat_env = {**env, "CELERY_BROKER_URL": "memory://"}
        beat = [PYTHON, "-m", "celery", "-A", "coinsite", "beat", "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler", "--loglevel", "WARNING",
                "--pidfile", f"{folder}/beat.pid", "--schedule", f"{folder}/beat-schedule"]
        rss, _output = run_measured(beat, beat_env, stop_after=BEAT_SECONDS)
        results["beat"] = (rss, "see tests/test_lean_processes.py")
        rss, output = run_measured([PYTHON, "-c", PAGE], {**env, "DJANGO_DEBUG": "1"})
        statuses = [line for line in output.splitlines() if line.startswith("statuses:")]
        results["page"] = (rss, heavy_of(output) + (f" ({statuses[-1]})" if statuses else ""))
    for name, (rss, heavy) in results.items():
        verdict = "ok" if rss <= TARGET_MB else f"over {TARGET_MB} MB"
        print(f"{name:14s} peak RSS {rss:7.1f} MB  {verdict:12s} heavy modules: {heavy}")
    print("processes: " + " ".join(f"{name}={rss:.0f}MB" for name, (rss, _heavy) in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
