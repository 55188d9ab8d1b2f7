"""A real server under hostile input: a pixel flood answered at bounded CPU and memory, and a server killed mid-request
leaves files that the orphan sweep removes.

The server is gunicorn (gunicorn.conf.py, one worker process) on the embedded default in its own folder, serving the
session's tiny production model (the test's MLflow store, read-only); its CPU time and peak RSS are read from /proc.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NOT_INHERITED = ("PYTEST_VERSION", "DATABASE_URL", "CELERY_BROKER_URL", "MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_ROOT")
PAGE = 4096


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def noisy(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = (rng.random((height // 16 + 1, width // 16 + 1, 3)) * 255).astype(np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)


def gradient(side: int, shade: int) -> Image.Image:
    ramp = Image.linear_gradient("L").resize((side, side))
    return Image.merge("RGB", (ramp, ramp.rotate(90), Image.new("L", (side, side), 40 * shade)))


def scan_bomb(width: int, height: int, repeats: int) -> bytes:
    """A flat progressive JPEG whose last scan is repeated: a few KB that cost seconds of CPU per scan pass."""
    data = encode(Image.new("RGB", (width, height), (120, 110, 90)), "JPEG", quality=90, progressive=True)
    last, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:end] + data[last:end] * repeats + data[end:]


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_memory_kb(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def worker_pid(master_pid: int) -> int:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


class Server:
    def __init__(self, tmp_path: Path, mlflow_dir: Path) -> None:
        self.var_dir = tmp_path / "var"
        self.env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED and not k.startswith("DJANGO_")}
        self.env.update(
            {
                "DJANGO_DEBUG": "1",
                "COINSITE_VAR_DIR": str(self.var_dir),
                "MLFLOW_TRACKING_URI": f"sqlite:///{mlflow_dir / 'mlflow.db'}",
                "MLFLOW_ARTIFACT_ROOT": str(mlflow_dir / "artifacts"),
                "MLFLOW_MODEL_NAME": "coin-year",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "WEB_CONCURRENCY": "1",
                "GUNICORN_THREADS": "2",
                "COINSITE_THROTTLE_PREDICT": "1000/min",
            }
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def start(self) -> None:
        log = open(self.var_dir / "gunicorn.log", "ab")  # noqa: SIM115  (the server keeps it open)
        self.process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "coinsite.wsgi", "--bind", f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while True:
            assert self.process.poll() is None, self.log()
            assert time.monotonic() < deadline, "gunicorn did not answer:\n" + self.log()
            try:
                if requests.get(f"{self.url}/accounts/login/", timeout=30).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.5)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def log(self) -> str:
        return (self.var_dir / "gunicorn.log").read_text(errors="replace")

    def prepare(self) -> None:
        self.var_dir.mkdir(parents=True)
        self.manage("migrate", "--noinput")
        code = (
            "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token;"
            "from predictions.roles import user_add_role;"
            "u = User.objects.create_user('client', password='a-long-client-phrase-42');"
            "user_add_role(user=u, role='collector'); print(Token.objects.create(user=u).key)"
        )
        token = self.manage("shell", "-c", code).strip().splitlines()[-1]
        self.auth = {"Authorization": f"Token {token}"}

    def photo_files(self) -> set[str]:
        media = self.var_dir / "media"
        return (
            {str(path.relative_to(media)) for path in media.rglob("*") if path.is_file()} if media.exists() else set()
        )

    def named_files(self) -> set[str]:
        with sqlite3.connect(self.var_dir / "db.sqlite3") as db:
            rows = db.execute("SELECT front_image, back_image, front_thumbnail, back_thumbnail FROM predictions_coin")
            return {name for row in rows for name in row if name}


@pytest.fixture
def server(tmp_path, production_model, mlflow_dir):
    server = Server(tmp_path, mlflow_dir)
    server.prepare()
    server.start()
    yield server
    server.kill()


def predict(server: Server, pairs: list[tuple[bytes, bytes]], timeout: float = 300) -> requests.Response:
    body = {"inputs": [{"front_image_base64": b64(front), "back_image_base64": b64(back)} for front, back in pairs]}
    return requests.post(f"{server.url}/api/predict", json=body, headers=server.auth, timeout=timeout)


def test_pixel_floods_and_scan_bombs_cost_under_a_second_of_cpu_per_photo_and_under_300_mb(server):
    pid = worker_pid(server.process.pid)
    flat = Image.new("RGB", (7000, 7000), (120, 110, 90))
    floods = {
        "PNG 7000x7000": encode(flat, "PNG"),
        "16-bit PNG 7000x7000": encode(flat.convert("I;16"), "PNG"),
        "WebP 7000x7000": encode(flat, "WEBP", quality=80),
        "HEIC 7000x7000": encode(flat, "HEIF", quality=80),
        "scan bomb 4000x3000": scan_bomb(4000, 3000, 2000),
    }
    # about the largest PNG the budget admits (21 megapixels), decoded at full size 32 times in one request
    accepted = [(encode(gradient(4600, shade), "PNG"), encode(gradient(4600, shade + 1), "PNG")) for shade in (1, 3)]
    before = process_memory_kb(pid)["VmRSS"]
    for name, data in floods.items():
        cpu = process_cpu_seconds(pid)
        response = predict(server, [(data, data)] * 16)
        spent = process_cpu_seconds(pid) - cpu
        assert response.status_code == 413, (name, response.status_code, response.text[:300])
        assert "would" in response.json()["error"] or "megapixels" in response.json()["error"], response.json()
        print(f"{name}: {len(data) / 1024:.0f} KB, 16 pairs answered 413 with {spent:.2f} s of server CPU")
        assert spent / 32 < 1.0, (name, spent)

    cpu = process_cpu_seconds(pid)
    response = predict(server, accepted * 8)
    spent = process_cpu_seconds(pid) - cpu
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["predictions"]) == 16
    growth_mb = (process_memory_kb(pid)["VmHWM"] - before) / 1024
    print(
        f"16 pairs of 21-megapixel PNGs decoded: {spent:.2f} s of server CPU ({spent / 32:.2f} s per photo), peak RSS "
        f"growth {growth_mb:.0f} MB"
    )
    assert spent / 32 < 1.0
    assert growth_mb < 300


def test_a_server_killed_during_a_16_input_predict_leaves_no_file_without_a_row_after_the_sweep(server):
    # 16 pairs of progressive photos: decoding them takes long enough to kill the server between writes and commit
    pairs = [
        (
            encode(noisy(1800, 1800, 2 * i), "JPEG", quality=80, progressive=True),
            encode(noisy(1800, 1800, 2 * i + 1), "JPEG", quality=80, progressive=True),
        )
        for i in range(16)
    ]
    outcome: dict[str, object] = {}

    def send() -> None:
        try:
            outcome["response"] = predict(server, pairs)
        except requests.RequestException as error:
            outcome["error"] = error

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 120
    while not server.photo_files() and time.monotonic() < deadline:
        time.sleep(0.005)
    server.kill()
    sender.join(timeout=60)

    orphans = server.photo_files() - server.named_files()
    assert "error" in outcome, f"the request finished before the kill: {outcome}"
    assert orphans, "the kill left no file without a row: nothing to sweep (kill earlier)"
    print(f"kill -9 during the request left {len(orphans)} file(s) with no row")

    swept = server.manage("sweep", "--grace-seconds", "0")

    assert server.photo_files() - server.named_files() == set(), swept
    print(swept.strip())


def test_a_coin_left_pending_by_a_crash_is_predicted_after_the_next_start_without_beat(
    tmp_path, production_model, mlflow_dir
):
    # given a coin accepted, committed and never predicted (the process died before its task ran), ten minutes ago
    server = Server(tmp_path, mlflow_dir)
    server.prepare()
    code = (
        "from datetime import timedelta; from django.utils import timezone;"
        "from django.contrib.auth.models import User; from predictions import services;"
        "from predictions.models import Coin; from training.ml.synthetic import iter_coins;"
        "front, back, _ = next(iter_coins(1, seed=5));"
        "coin = services.coin_create(owner=User.objects.get(username='client'), front=front, back=back,"
        " enqueue_prediction=False);"
        "Coin.objects.filter(pk=coin.pk).update(created_at=timezone.now() - timedelta(minutes=10));"
        "print(coin.pk)"
    )
    coin_id = int(server.manage("shell", "-c", code).strip().splitlines()[-1])
    started = time.monotonic()

    # when the server starts again, as `make run` starts it (the embedded default has no beat: its own timer)
    server.env["COINSITE_HOUSEKEEPING_SECONDS"] = "300"
    server.start()
    try:
        deadline = started + 300
        status = "pending"
        while status == "pending" and time.monotonic() < deadline:
            with sqlite3.connect(server.var_dir / "db.sqlite3") as db:
                status = db.execute("SELECT status FROM predictions_coin WHERE id = ?", (coin_id,)).fetchone()[0]
            time.sleep(1)
    finally:
        server.kill()

    # then its housekeeping timer predicts the coin within 5 minutes
    assert status == "predicted", server.log()
    print(f"coin left pending was predicted {time.monotonic() - started:.0f} s after the start")


def test_make_runs_server_loads_the_production_model_before_it_takes_requests(tmp_path, production_model, mlflow_dir):
    # given the embedded default prepared, started as `make run` starts it
    server = Server(tmp_path, mlflow_dir)
    server.prepare()
    server.env["COINSITE_WARM_UP_MODEL"] = "1"
    log_path = server.var_dir / "runserver.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{server.port}", "--noreload"],
            cwd=ROOT,
            env=server.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while "Quit the server" not in log_path.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.2)
        text = log_path.read_text(errors="replace")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    # then the model was loaded before the server listened for its first request
    loaded = text.find(f"serving coin-year v{production_model}")
    assert 0 <= loaded < text.find("Starting development server"), text
