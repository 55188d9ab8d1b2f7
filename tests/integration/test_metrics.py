"""/metrics under gunicorn with two worker processes: predictions served by both are all counted, whichever answers.

The server is gunicorn (gunicorn.conf.py, as deployed: PROMETHEUS_MULTIPROC_DIR defaults to a folder under its own
COINSITE_VAR_DIR) on the embedded default, serving the session's tiny production model, with METRICS_TOKEN set and
no trusted network, so the scrape goes through the token path. Which worker served a prediction is read from the
multiprocess folder: a worker that counted a prediction has written its own `counter_<pid>.db` there.

And a real Celery inference worker, whose predictions no web host can count, serves them on its own metrics port.
"""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from predictions.models import Prediction
from tests.integration.conftest import wait_until
from tests.integration.hosts import free_port
from tests.integration.test_hostile_server import Server
from tests.integration.test_inference_worker import upload, worker_env
from training.ml.synthetic import iter_coins

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "scrape-token-for-the-two-worker-test"
CONNECTIONS = 6
MAX_PREDICTIONS = 120  # enough that a kernel handing every connection to one worker would be a real bug, not luck


def children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def counting_pids(folder: Path) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in folder.glob("counter_*.db")}


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples if s.name == name
    ]


@pytest.fixture
def two_worker_server(tmp_path, production_model, mlflow_dir):
    server = Server(tmp_path, mlflow_dir)
    server.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server.env.update(
        {
            "WEB_CONCURRENCY": "2",
            "GUNICORN_THREADS": "2",
            "METRICS_TOKEN": TOKEN,
            "METRICS_ALLOWED_NETWORKS": "",
            "COINSITE_ALLOW_LOCAL_CACHE": "1",  # two workers without CACHE_URL: no limit is tested here
        }
    )
    server.prepare()
    server.start()
    yield server
    server.kill()


def test_metrics_sums_predictions_of_two_gunicorn_workers_by_model_version(two_worker_server, production_model):
    server = two_worker_server
    workers = children(server.process.pid)
    folder = server.var_dir / "prometheus"
    assert len(workers) == 2, workers
    body = {
        "inputs": [
            {
                "front_image_base64": base64.b64encode(front).decode(),
                "back_image_base64": base64.b64encode(back).decode(),
            }
            for front, back, _year in iter_coins(1, seed=41, size=96)
        ]
    }

    def predict(_: int) -> int:
        # one connection per request: gunicorn's workers accept connections, not requests
        response = requests.post(f"{server.url}/api/predict", json=body, headers=server.auth, timeout=120)
        assert response.status_code == 200, response.text[:300]
        return len(response.json()["predictions"])

    # when predictions are sent from several connections until both workers have stored some
    sent = 0
    started = time.monotonic()
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        while sent < MAX_PREDICTIONS and (sent < 2 * CONNECTIONS or counting_pids(folder) != workers):
            sent += sum(pool.map(predict, range(CONNECTIONS)))
    seconds = time.monotonic() - started

    # then both workers counted some, and a scrape (answered by either) reports them all for the model's version
    assert counting_pids(folder) == workers, (counting_pids(folder), workers, server.log())
    assert requests.get(f"{server.url}/metrics", timeout=30).status_code == 403  # no token, no trusted network
    scrapes = [
        requests.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        for _ in range(4)
    ]
    for scrape in scrapes:
        assert scrape.status_code == 200, scrape.text[:300]
        counted = samples(scrape.text, "coinsite_predictions_total")
        by_version = sum(value for labels, value in counted if labels["version"] == str(production_model))
        assert by_version == sent, counted
        assert {labels["outcome"] for labels, _ in counted} <= {"year", "not_a_coin", "unreadable"}
        latency = samples(scrape.text, "coinsite_http_request_duration_seconds_count")
        predict_count = sum(value for labels, value in latency if labels["view"] == "api-predict")
        assert predict_count >= sent, latency
        runs = {labels["status"] for labels, _ in samples(scrape.text, "coinsite_training_runs")}
        assert runs == {"queued", "running", "succeeded", "failed", "cancelled"}
    print(
        f"{sent} predictions over {CONNECTIONS} connections in {seconds:.1f} s, counted by both workers "
        f"{sorted(workers)}; /metrics reported {sent} for version {production_model}"
    )


def test_an_inference_workers_predictions_are_counted_on_its_own_metrics_port(
    start_worker, production_model, collector, tmp_path
):
    # given: a real inference worker (threads pool, as deployed) told to serve its metrics
    port = free_port()
    worker = start_worker("inference", COINSITE_WORKER_METRICS_PORT=str(port), **worker_env(tmp_path))

    # when: uploads are predicted by the worker, not by this process
    coins = [upload(collector, n) for n in range(3)]
    wait_until(
        lambda: Prediction.objects.filter(coin__in=coins).count() == len(coins),
        timeout=90,
        message=f"the worker's predictions\n{worker.log()}",
    )

    # then: the worker's own endpoint reports every one of them for the serving version
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
    assert response.status_code == 200, worker.log()
    counted = samples(response.text, "coinsite_predictions_total")
    assert sum(value for labels, value in counted if labels["version"] == str(production_model)) == len(coins)
    assert f"worker metrics: http://127.0.0.1:{port}/metrics" in worker.log()
