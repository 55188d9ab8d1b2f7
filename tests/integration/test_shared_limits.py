"""Limits across gunicorn workers, under production settings: with a per-process cache the server refuses to start
two workers, naming CACHE_URL; with a shared cache (the database table here: no Redis needed) the 30-a-minute limit
and the 5-failure lockout hold exactly across both workers."""

from __future__ import annotations

import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.integration.test_production_server import gunicorn_start, gunicorn_stop, production_env, release_command, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a-long-collector-phrase-42"


def worker_pids(master: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{master}/task/{master}/children").read_text().split()}


@pytest.fixture
def two_worker_env(tmp_path):
    env = production_env(tmp_path / "var")
    env.update({"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4", "DJANGO_HTTPS": "0"})
    return env


def test_two_workers_with_a_per_process_cache_refuse_to_start(two_worker_env, tmp_path):
    # given production settings, two workers and no CACHE_URL
    run(release_command(), two_worker_env)

    # when gunicorn starts
    server, _url = gunicorn_start(two_worker_env, tmp_path / "gunicorn.log")
    try:
        code = server.wait(timeout=120)
    finally:
        gunicorn_stop(server)
    log = (tmp_path / "gunicorn.log").read_text(errors="replace")

    # then it exits non-zero, saying why and what to set
    assert code != 0, log
    assert "Refusing to start 2 workers: The cache is LocMemCache, private to each process" in log, log
    assert "Set CACHE_URL" in log
    print(f"gunicorn exit code {code}; log: ...{log[log.index('Refusing') :][:200]}")


def test_the_limits_hold_exactly_across_two_workers_with_a_shared_cache(two_worker_env, tmp_path):
    # given the database cache table as CACHE_URL (created by the release step) and a collector with a token
    env = {**two_worker_env, "CACHE_URL": "dbcache://coinsite_cache", "COINSITE_THROTTLE_TOKEN": "1000/min"}
    env["COINSITE_THROTTLE_SIGNIN_ACCOUNT"] = "1000/min"  # the lockout is what is counted below
    run(release_command(), env)
    python = shlex.quote(sys.executable)
    run(
        f"{python} manage.py createsuperuser --noinput --username owner --email o@example.org",
        {**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
    )
    token = run(f"{python} manage.py drf_create_token owner", env).split()[2]
    server, url = gunicorn_start(env, tmp_path / "gunicorn.log")
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (tmp_path / "gunicorn.log").read_text(errors="replace")
            assert time.monotonic() < deadline
            try:
                if requests.get(f"{url}/healthz", timeout=30).status_code == 200 and len(worker_pids(server.pid)) == 2:
                    break
            except requests.RequestException:  # not listening yet, or a worker still booting
                pass
            time.sleep(0.5)

        # when 60 predictions (refused bodies count like any other) arrive at once, each on its own connection
        def predict(_: int) -> int:
            headers = {"Authorization": f"Token {token}", "Connection": "close"}
            return requests.post(f"{url}/api/predict", json={}, headers=headers, timeout=120).status_code

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(predict, range(60)))

        # and 40 wrong passwords for one account, then the right one
        def guess(n: int) -> int:
            body = {"username": "owner", "password": f"wrong-{n}"}
            return requests.post(
                f"{url}/api/token", json=body, headers={"Connection": "close"}, timeout=120
            ).status_code

        with ThreadPoolExecutor(12) as pool:
            guesses = list(pool.map(guess, range(40)))
        right = requests.post(f"{url}/api/token", json={"username": "owner", "password": PASSWORD}, timeout=120)
    finally:
        gunicorn_stop(server)

    # then exactly 30 predictions were let through across both workers, at most 5 passwords checked, and locked
    print(f"predict answers: {sorted(answers)}; token answers: {sorted(guesses)}")
    assert answers.count(429) == 30 and len(answers) == 60, sorted(answers)
    assert guesses.count(400) <= 5 and guesses.count(400) + guesses.count(429) == 40, sorted(guesses)
    assert right.status_code == 429 and "sign-in is locked" in right.json()["error"]
