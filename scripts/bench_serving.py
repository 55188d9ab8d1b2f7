"""`make bench`: one registered model, the same inputs, three ways of serving it.

(a) bare in-process decode + preprocess + forward (ONNX Runtime), (b) POST /api/predict served by gunicorn (which also
stores every input as a coin with its prediction), (c) the same model version under `mlflow models serve --env-manager
local`. Inputs: pairs of 12 MP phone-size JPEGs and pairs of 600x600 JPEGs. Prints single-client p50/p95 latency,
8-concurrent-client throughput, and the ratios b/a and b/c.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coinsite.settings")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def photo_pairs(size: tuple[int, int], count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """Generated coin photos upscaled to `size` with sensor-like noise, so JPEGs weigh what phone photos weigh."""
    from training.ml.synthetic import iter_coins

    rng = np.random.default_rng(seed)
    pairs = []
    for front, back, _year in iter_coins(count, seed=seed, size=512):
        sides = []
        for data in (front, back):
            image = Image.open(io.BytesIO(data)).convert("RGB").resize(size, Image.Resampling.BICUBIC)
            if size[0] * size[1] > 1_000_000:
                noise = rng.normal(0, 6, (size[1], size[0], 3))
                image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8))
                image = image.filter(ImageFilter.SHARPEN)
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=92)
            sides.append(buffer.getvalue())
        pairs.append((sides[0], sides[1]))
    return pairs


def body(pair: tuple[bytes, bytes]) -> bytes:
    return json.dumps(
        {
            "inputs": [
                {
                    "front_image_base64": base64.b64encode(pair[0]).decode(),
                    "back_image_base64": base64.b64encode(pair[1]).decode(),
                }
            ]
        }
    ).encode()


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def wait_http(url: str, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def http_bench(url: str, headers: dict, bodies: list[bytes], *, repeats: int, concurrent_requests: int) -> dict:
    session = requests.Session()
    for payload in bodies[:2]:  # warm-up
        session.post(url, data=payload, headers=headers, timeout=60).raise_for_status()
    latencies = []
    for i in range(repeats):
        started = time.perf_counter()
        response = session.post(url, data=bodies[i % len(bodies)], headers=headers, timeout=60)
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        assert len(response.json()["predictions"]) == 1
    p50, p95 = percentiles(latencies)

    def client(k: int) -> None:
        own = requests.Session()
        for i in range(k, concurrent_requests, 8):
            own.post(url, data=bodies[i % len(bodies)], headers=headers, timeout=120).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(8)))
    throughput = concurrent_requests / (time.perf_counter() - started)
    return {"p50": p50, "p95": p95, "rps8": throughput}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60, help="single-client requests per input kind")
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="about how long the 8 concurrent clients run per server and input"
    )
    parser.add_argument("--gunicorn-workers", type=int, help="default: gunicorn.conf.py's (one per core)")
    parser.add_argument("--gunicorn-threads", type=int, help="default: gunicorn.conf.py's")
    args = parser.parse_args()

    import django

    django.setup()
    import torch
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from registry import gateway
    from training.ml import images

    # (a) runs like the serving processes do (INFERENCE_TORCH_THREADS): the comparison is of serving paths, not of
    # OpenMP settings.
    torch.set_num_threads(settings.INFERENCE_TORCH_THREADS)
    version = gateway.alias_version(gateway.PRODUCTION_ALIAS)
    if version is None:
        sys.exit("No model in production: run `make run` (or `make demo`) first.")
    user, _ = get_user_model().objects.get_or_create(username="bench")
    token, _ = Token.objects.get_or_create(user=user)
    loaded = gateway.tracking().load_predictor(settings.MLFLOW_MODEL_NAME, version)
    print(f"model {settings.MLFLOW_MODEL_NAME} v{version} (backend: {loaded.backend})")

    kinds = {"12MP": photo_pairs((4000, 3000), 4, seed=11), "600px": photo_pairs((600, 600), 4, seed=12)}
    for name, pairs in kinds.items():
        sizes = [len(side) / 1e6 for pair in pairs for side in pair]
        print(f"inputs {name}: {len(pairs)} pairs, JPEG {min(sizes):.1f}-{max(sizes):.1f} MB per photo")

    env = dict(os.environ, MLFLOW_TRACKING_URI=settings.MLFLOW_TRACKING_URI, MLFLOW_DISABLE_TELEMETRY="true")
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # mlflow serve starts uvicorn by name
    web_port, mlflow_port = free_port(), free_port()
    gunicorn_options = []  # gunicorn reads gunicorn.conf.py from ROOT: the deployment's settings unless overridden
    if args.gunicorn_workers:
        gunicorn_options += ["--workers", str(args.gunicorn_workers)]
    if args.gunicorn_threads:
        gunicorn_options += ["--threads", str(args.gunicorn_threads)]
    print(f"(b) gunicorn coinsite.wsgi, gunicorn.conf.py {' '.join(gunicorn_options) or '(as deployed)'}")
    web = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "coinsite.wsgi", "--bind", f"127.0.0.1:{web_port}", *gunicorn_options],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    served = subprocess.Popen(
        [str(ROOT / ".venv/bin/mlflow"), "models", "serve", "-m", f"models:/{settings.MLFLOW_MODEL_NAME}/{version}",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(mlflow_port)],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{web_port}/admin/login/", 120, web)
        wait_http(f"http://127.0.0.1:{mlflow_port}/ping", 180, served)
        rows = []
        for name, pairs in kinds.items():
            bodies = [body(pair) for pair in pairs]
            # (a) bare in-process
            for pair in pairs[:2]:
                loaded.predict_pairs(*images.preprocess_batch([pair], loaded.config))
            latencies = []
            for i in range(args.repeats):
                started = time.perf_counter()
                front, back = images.preprocess_batch([pairs[i % len(pairs)]], loaded.config)
                loaded.predict_pairs(front, back)
                latencies.append((time.perf_counter() - started) * 1000)
            a50, a95 = percentiles(latencies)
            # Enough requests for about --seconds at the rate every core running (a) could reach.
            concurrent = max(64, min(4000, int(args.seconds * CORES * 1000 / a50) // 8 * 8))
            b = http_bench(
                f"http://127.0.0.1:{web_port}/api/predict",
                {"Authorization": f"Token {token.key}", "Content-Type": "application/json"},
                bodies, repeats=args.repeats, concurrent_requests=concurrent,
            )
            c = http_bench(
                f"http://127.0.0.1:{mlflow_port}/invocations", {"Content-Type": "application/json"},
                bodies, repeats=args.repeats, concurrent_requests=concurrent,
            )
            rows.append((name, a50, a95, b, c))
    finally:
        stop(web)
        stop(served)

    print()
    print(f"{'inputs':<7} {'(a) in-process p50/p95':>24} {'(b) /api/predict p50/p95':>26} {'(c) mlflow serve p50/p95':>26}"
          f" {'b/a p50':>8} {'b/c p50':>8} {'(b) 8-client req/s':>19} {'(c) 8-client req/s':>19} {'b/c thr':>8}")
    for name, a50, a95, b, c in rows:
        print(f"{name:<7} {a50:>11.1f} / {a95:>6.1f} ms {b['p50']:>12.1f} / {b['p95']:>6.1f} ms"
              f" {c['p50']:>12.1f} / {c['p95']:>6.1f} ms {b['p50'] / a50:>8.2f} {b['p50'] / c['p50']:>8.2f}"
              f" {b['rps8']:>19.1f} {c['rps8']:>19.1f} {b['rps8'] / c['rps8']:>8.2f}")
    print("\ntargets: b/a p50 <= 1.5, b/c p50 <= 1.0, b/c throughput >= 2.0")
    print(f"\nceiling on this machine ({CORES} cores): a server doing nothing but (a) on every core, no HTTP, no JSON,")
    print("no storage, no client on the same cores; a throughput above it is impossible here:")
    for name, a50, _a95, _b, c in rows:
        ceiling = CORES * 1000 / a50
        print(f"  {name:<7} {ceiling:7.1f} req/s = {ceiling / c['rps8']:.2f} x (c)")


if __name__ == "__main__":
    main()
