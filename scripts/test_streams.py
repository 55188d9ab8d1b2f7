"""Run the whole suite as concurrent pytest streams, on SQLite and on PostgreSQL (`make test`).

Why streams (six: four SQLite slices, the PostgreSQL database tests and the integration tests): the suite mostly waits. A run on 2 cores used 885 s of CPU in 1,192 s of wall time with two processes
(about 0.37 of a core each): the rest is waiting on gunicorn, Celery workers, MLflow servers, Chromium, subprocesses
and their start-up. Run one after the other, the SQLite pass and the PostgreSQL pass took 2,554 s when session 9's
work landed; as concurrent streams the waits overlap.

Why not pytest-xdist: its workers take files in the scheduler's order, so pytest-django's ordering (plain database
tests before transactional ones) is lost; a transactional test's flush then removes the rows the data migrations
created (the role groups, the schedules) under the database tests that follow, and serialized rollbacks collide with
the content types a flush re-creates (a trial: 6 failures and 22 errors that pass in order). Separate pytest
processes keep that ordering inside each stream.

Each stream has its own COINSITE_VAR_DIR (static files, media) and pytest temporary folder, so none writes under
another; only the PostgreSQL streams talk to PostgreSQL (each to its own test database) and only the integration stream to
Redis. Output lines are prefixed with the stream's name;
the last lines give each stream's time and result.

    python scripts/test_streams.py                 # every stream at once
    python scripts/test_streams.py --only postgres # one stream (make test-postgres runs both PostgreSQL ones)
    python scripts/test_streams.py -- -x -k upload # extra pytest arguments for every stream
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/coinsite")
SQLITE = ["-m", "not integration"]
# The training loop's end-to-end files are the suite's longest (about 600 s of the SQLite pass), so they run apart.
LONGEST = ["tests/training/test_learning_loop.py", "tests/training/test_first_run.py"]


@dataclass(frozen=True)
class Stream:
    """One pytest process of the suite: its name, its arguments and the environment it adds."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)


STREAMS = [
    Stream("sqlite-loop", [*SQLITE, *LONGEST, "tests/scripts"]),
    Stream(
        "sqlite-training",
        [*SQLITE, "tests/training", "--ignore=tests/training/ml", *(f"--ignore={path}" for path in LONGEST)],
    ),
    Stream("sqlite-ml", [*SQLITE, "tests/training/ml", "tests/generalisation"]),
    # Everything else: the ignores name exactly what the streams above run, so together they are the whole suite.
    Stream(
        "sqlite-web",
        [*SQLITE, "tests", "--ignore=tests/training", "--ignore=tests/scripts", "--ignore=tests/generalisation"],
    ),
    # The PostgreSQL pass, in two streams with their own test databases: the database tests, and the integration tests
    # with real Redis, Celery workers, MLflow and S3 servers (about half of the pass's time each). The Django-free ML
    # tests and the settings subprocess tests gain nothing from a second database, so they run once, above.
    Stream(
        "postgres",
        [
            "-m",
            "not integration and not (browser or slow)",
            "tests",
            "--ignore=tests/training/ml",
            "--ignore=tests/generalisation",
            "--ignore=tests/test_settings.py",
            "--ignore=tests/test_observability.py",
        ],
        {"DATABASE_URL": TEST_DATABASE_URL},
    ),
    Stream(
        "postgres-integration", ["-m", "integration", "tests"], {"DATABASE_URL": TEST_DATABASE_URL + "_integration"}
    ),
]


def stream_runs_file(stream: Stream, path: str) -> bool:
    """Whether ``stream`` collects the test file ``path`` (relative to the repository), judged from its arguments:
    under one of its paths and under none of its ``--ignore``s. The suite's completeness test asks this of every file."""
    paths = [a for a in stream.args if a.startswith("tests") and not a.startswith("-")]
    ignores = [a.removeprefix("--ignore=") for a in stream.args if a.startswith("--ignore=")]

    def under(folder: str) -> bool:
        return path == folder or path.startswith(folder.rstrip("/") + "/")

    return any(under(p) for p in paths) and not any(under(i) for i in ignores)


SUMMARY = re.compile(r"^=+ (.*\d+ (passed|failed|error|errors|skipped|deselected).*) =+$")


@dataclass
class Outcome:
    """How one stream ended: pytest's exit status, its wall time and its summary line."""

    stream: Stream
    returncode: int = -1
    seconds: float = 0.0
    summary: str = "(no summary line)"


def run_stream(stream: Stream, extra: list[str], prefix: bool, lock: threading.Lock) -> Outcome:
    """Run one stream to its end, echoing its output line by line (prefixed with its name when several run)."""
    var = ROOT / "var" / "test" / stream.name
    var.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COINSITE_VAR_DIR": str(var), "PYTHONUNBUFFERED": "1", **stream.env}
    command = [
        sys.executable, "-m", "pytest", *stream.args, "--durations=10", "-p", "no:cacheprovider",
        f"--basetemp={var / 'pytest-tmp'}", *extra,
    ]  # fmt: skip
    outcome = Outcome(stream)
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip("\n")
        if match := SUMMARY.match(line.strip()):
            outcome.summary = match.group(1)
        with lock:
            print(f"{stream.name:>20} | {line}" if prefix else line, flush=True)
    outcome.returncode = process.wait()
    outcome.seconds = time.monotonic() - started
    return outcome


def run_streams(streams: list[Stream], extra: list[str]) -> list[Outcome]:
    """Start every stream at once and wait for all of them; a Ctrl-C stops them all."""
    lock = threading.Lock()
    outcomes: list[Outcome] = [Outcome(stream) for stream in streams]

    def target(index: int) -> None:
        outcomes[index] = run_stream(streams[index], extra, prefix=len(streams) > 1, lock=lock)

    threads = [threading.Thread(target=target, args=(index,), daemon=True) for index in range(len(streams))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=[s.name for s in STREAMS], help="run this stream (repeat)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments for every stream (after --)")
    options = parser.parse_args()
    streams = [s for s in STREAMS if not options.only or s.name in options.only]
    started = time.monotonic()
    outcomes = run_streams(streams, options.pytest_args)
    wall = time.monotonic() - started
    print()
    for outcome in outcomes:
        verdict = "ok" if outcome.returncode == 0 else f"FAILED (exit {outcome.returncode})"
        print(f"stream {outcome.stream.name:<20} {outcome.seconds:7.0f} s  {verdict:<16} {outcome.summary}")
    failed = [o.stream.name for o in outcomes if o.returncode != 0]
    summed = sum(o.seconds for o in outcomes)
    print(
        f"suite: wall {wall:.0f} s for {summed:.0f} s of streams; "
        + (f"failed: {', '.join(failed)}" if failed else "all passed")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
