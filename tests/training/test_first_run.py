"""A fresh clone's `make run`: the site answers while the first model trains in the background, says so, keeps the
uploads made meanwhile, and predicts them, and the first upload after the model landed, without a restart.

The steps are the Makefile's `run` recipe (migrate, bootstrap_demo --train-in-background, runserver), each its own
process as there, on a small demo set and a tiny training config. The training child is paused (SIGSTOP) once started
and resumed after the checks of "before": a tiny run finishes in about 25 s, so without the pause "the site answered
before the model" would depend on the machine's speed.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from predictions.models import Coin
from predictions.services import coin_create
from training.management.commands import bootstrap_demo
from training.ml import synthetic
from training.ml.synthetic import generate_coin_jpegs
from training.models import TrainingRun
from training.services.runs import training_run_start

ROOT = Path(__file__).resolve().parents[2]
TINY = "image_size=128 epochs=1 folds=2 batch_size=8 patience=0 serve_int8=false"
PASSWORD = "first-run-demo-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_run_env(var: Path) -> dict[str, str]:
    """What `make run` gives its commands on a fresh clone: no deployment variable, DEBUG on, the demo's sizes."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "CELERY_", "MLFLOW_", "COINSITE_", "CACHE_URL"))
        and key != "PYTEST_VERSION"
    }
    env.update(
        {
            "DJANGO_DEBUG": "1",
            "COINSITE_VAR_DIR": str(var),
            "COINSITE_BOOTSTRAP_COINS": "16",
            "COINSITE_BOOTSTRAP_SET": TINY,
            "COINSITE_DEMO_PASSWORD": PASSWORD,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "OMP_NUM_THREADS": "1",
        }
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def bootstrap_in_background(env: dict[str, str], log: Path) -> str:
    """`manage.py bootstrap_demo --train-in-background` to its end, its output. Into a file, not a pipe: the training
    child inherits the output, and reading a pipe to its end would wait for the training too."""
    with open(log, "w") as out:
        done = subprocess.run(
            [sys.executable, "manage.py", "bootstrap_demo", "--train-in-background"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    output = log.read_text()
    assert done.returncode == 0, output
    return output


def wait_for(condition, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def upload(base: str, token: str, year: int, seed: int) -> dict:
    front, back = generate_coin_jpegs(year, seed)
    response = requests.post(
        f"{base}/api/coins/",
        headers={"Authorization": f"Token {token}"},
        files={"front_image": ("front.jpg", front), "back_image": ("back.jpg", back)},
        timeout=120,
    )
    assert response.status_code == 202, response.text
    return response.json()


def coin(base: str, token: str, coin_id: int) -> dict:
    response = requests.get(f"{base}/api/coins/{coin_id}/", headers={"Authorization": f"Token {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


@pytest.mark.slow
def test_make_run_serves_before_the_first_model_and_predicts_uploads_when_it_lands(tmp_path):
    env = make_run_env(tmp_path / "var")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = child = None
    try:
        # given a fresh clone's `make run`: migrate, then the demo with the first model trained in the background
        manage(env, "migrate", "--noinput", "-v", "0")
        boot = bootstrap_in_background(env, tmp_path / "bootstrap.log")
        child = int(re.search(r"\[first model\] training run #\d+ in the background \(process (\d+)\)", boot).group(1))
        os.kill(child, signal.SIGSTOP)  # the first model is still training (held here until the checks below)
        assert "Demo ready" in boot

        # when the server starts (as the Makefile starts it)
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env={**env, "COINSITE_HOUSEKEEPING_SECONDS": "300", "COINSITE_WARM_UP_MODEL": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        # then it answers before the first model exists, and its pages say that one is on its way
        wait_for(lambda: answers(f"{base}/accounts/login/"), timeout=120, what="the server's first page")
        login_page = " ".join(requests.get(f"{base}/accounts/login/", timeout=30).text.split())
        assert "No model in production yet" in login_page, login_page
        assert "The first model is on its way (queued" in login_page and "Uploads are kept" in login_page

        # and an upload made now is kept, waiting for the model
        token = re.search(r"Generated token (\w+) for user collector", manage(env, "drf_create_token", "collector"))
        token = token.group(1)
        waiting = upload(base, token, 1937, seed=11)
        assert waiting["status"] == "pending" and waiting["year"] is None

        # when the first model lands (the training process finishes on its own)
        os.kill(child, signal.SIGCONT)
        wait_for(lambda: process_gone(child), timeout=600, what="the first model's training process")
        child = None

        # then the coin that waited gets its year, and the first upload after that is predicted at once, by the
        # same server process (no restart)
        predicted = wait_for(
            lambda: (c := coin(base, token, waiting["id"]))["status"] != "pending" and c,
            timeout=60,
            what="the waiting coin's prediction",
        )
        assert predicted["predictions"], predicted
        first_after = upload(base, token, 1968, seed=12)
        assert first_after["status"] != "pending" and first_after["predictions"], first_after
        assert server.poll() is None
        page = " ".join(requests.get(f"{base}/accounts/login/", timeout=30).text.split())
        assert "Model in production" in page and "on its way" not in page, page
    finally:
        if child is not None and not process_gone(child):
            os.kill(child, signal.SIGCONT)
            os.kill(child, signal.SIGTERM)
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ctrl_c_during_the_background_training_ends_its_run_failed_so_the_next_start_trains_again(
    model_name, collector, monkeypatch
):
    # given 24 labelled demo coins and the first run queued, as `bootstrap_demo --train-in-background` leaves them
    for front, back, year in synthetic.iter_coins(24, seed=5, size=128):
        coin_create(
            owner=collector,
            front=front,
            back=back,
            source=Coin.Source.DEMO,
            verified_year=year,
            enqueue_prediction=False,
        )
    run = training_run_start(overrides=TINY.split(), enqueue=False)
    # and Ctrl-C arriving after the first epoch (the real signal, to this process, as the terminal sends it)
    reporter = bootstrap_demo.Command._epoch_reporter

    def reporter_then_ctrl_c(self, **kwargs):
        report = reporter(self, **kwargs)

        def on_epoch(fold, epoch, metrics):
            report(fold, epoch, metrics)
            os.kill(os.getpid(), signal.SIGINT)

        return on_epoch

    monkeypatch.setattr(bootstrap_demo.Command, "_epoch_reporter", reporter_then_ctrl_c)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        # when the child process's command trains it
        with pytest.raises(CommandError, match="failed: .*stopped by signal SIGINT"):
            call_command("bootstrap_demo", "--first-model-run", str(run.pk), stdout=open(os.devnull, "w"))  # noqa: SIM115
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])

    # then the run ended FAILED (the training lock is free) instead of staying RUNNING for the lease's 15 minutes
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and "stopped by signal SIGINT" in run.error
    assert not TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).exists()
