"""`make test`'s streams (scripts/test_streams.py) together run every test file, each SQLite file exactly once."""

from __future__ import annotations

from pathlib import Path

from scripts.test_streams import STREAMS, stream_runs_file

ROOT = Path(__file__).resolve().parents[2]
SQLITE_STREAMS = [stream for stream in STREAMS if "DATABASE_URL" not in stream.env]


def suite_files() -> list[str]:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py"))
    assert len(files) > 100
    return files


def test_every_test_file_runs_in_exactly_one_sqlite_stream():
    for path in suite_files():
        runners = [stream.name for stream in SQLITE_STREAMS if stream_runs_file(stream, path)]
        assert len(runners) == 1, f"{path} runs in {runners or 'no stream'}"


def test_the_postgresql_streams_run_the_database_and_integration_tests_on_databases_of_their_own():
    postgres = {stream.name: stream for stream in STREAMS if "DATABASE_URL" in stream.env}

    assert stream_runs_file(postgres["postgres-integration"], "tests/integration/test_celery_worker.py")
    assert stream_runs_file(postgres["postgres"], "tests/predictions/test_review_desk.py")
    assert not stream_runs_file(postgres["postgres"], "tests/training/ml/test_train.py")
    assert len({stream.env["DATABASE_URL"] for stream in postgres.values()}) == 2


def test_a_new_test_folder_is_picked_up_by_the_catch_all_stream():
    runners = [stream.name for stream in SQLITE_STREAMS if stream_runs_file(stream, "tests/registry/test_promotion.py")]

    assert runners == ["sqlite-web"]
