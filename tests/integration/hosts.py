"""Separate "hosts" for the integration tests: processes of this project started as the production Procfile starts
them, each in its own working directory with its own COINSITE_VAR_DIR and temp folder, given only environment
variables; and the services they share (an `mlflow server` over TCP).

A host imports the project's code through PYTHONPATH (a deployment ships a copy of it to every host) and shares no
folder with any other host, so anything one host writes to its disk is invisible to the others, as on real machines.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# What the test process's own environment says about where the site's state lives: a host is told its own.
NOT_INHERITED_PREFIXES = ("DJANGO_", "AWS_", "MLFLOW_", "COINSITE_", "CELERY_", "GUNICORN_")
NOT_INHERITED = ("PYTEST_VERSION", "DATABASE_URL", "CACHE_URL", "PROMETHEUS_MULTIPROC_DIR", "PYTHONPATH", "TMPDIR")
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".avif", ".gif", ".bmp", ".tif", ".tiff"}
PHOTO_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env() -> dict[str, str]:
    """This process's environment without anything that would point a host at the test process's own state."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in NOT_INHERITED and not key.startswith(NOT_INHERITED_PREFIXES)
    }


def procfile_command(name: str, path: Path = ROOT / "Procfile") -> str:
    """The Procfile's command of process ``name``, runnable from any folder: the venv's tools by absolute path and
    manage.py by the project's path (the Procfile runs from the project's root)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            command = re.sub(
                r"(?<![\w/.])\.venv/bin/python manage\.py", f"{sys.executable} {ROOT / 'manage.py'}", command
            )
            return re.sub(r"(?<![\w/.])\.venv/bin/", f"{VENV_BIN}/", command.strip())
    raise AssertionError(f"{path.name} has no process {name!r}")


def is_photo(path: Path) -> bool:
    """A photo by its name or by its first bytes (JPEG, PNG, GIF, TIFF, BMP, WebP, HEIF/AVIF)."""
    if path.suffix.lower() in PHOTO_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return head.startswith(PHOTO_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[4:8] == b"ftyp"


def photo_files(
    folder: Path, *, skip: tuple[Path, ...] = (), skip_names: frozenset[str] = frozenset(), since: float | None = None
) -> list[Path]:
    """Photo files under ``folder``, leaving out the folders in ``skip`` and any folder named in ``skip_names``;
    with ``since`` (a time.time()), only files modified since then."""
    found = []
    for directory, folders, files in os.walk(folder):
        here = Path(directory)
        folders[:] = [name for name in folders if name not in skip_names and here / name not in skip]
        for name in files:
            path = here / name
            if since is not None and path.stat().st_mtime < since:
                continue
            if is_photo(path):
                found.append(path)
    return found


def wait_for_http(url: str, process: subprocess.Popen, *, name: str, log: Callable[[], str], timeout: float) -> None:
    """Wait until ``url`` answers 200, failing with the server's log as soon as ``process`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"{name} exited:\n{log()[-5000:]}"
        assert time.monotonic() < deadline, f"{name} did not answer {url}:\n{log()[-5000:]}"
        try:
            if requests.get(url, timeout=10).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.5)


def stop_groups(*processes: subprocess.Popen | None, grace: float = 20) -> None:
    """Stop processes started with start_new_session=True and every child they spawned (gunicorn's and Celery's
    workers, the MLflow server's uvicorn workers): all are asked at once, then waited for, then killed."""
    started = [process for process in processes if process is not None]
    for process in started:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in started:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in started:
        _signal_group(process, signal.SIGKILL)  # children that outlived their leader still hold ports and files
        process.wait(timeout=10)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


class Host:
    """One machine of a distributed deployment: a Procfile process run in its own folder, with its own var folder
    and temp folder, and the environment a deployment gives every host plus its own paths."""

    def __init__(self, name: str, folder: Path, env: dict[str, str]) -> None:
        self.name = name
        self.cwd = folder
        self.var_dir = folder / "var"
        self.tmp_dir = folder / "tmp"
        for path in (self.var_dir, self.tmp_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.env = {
            **clean_env(),
            **env,
            "PYTHONPATH": str(ROOT),
            "COINSITE_VAR_DIR": str(self.var_dir),
            "TMPDIR": str(self.tmp_dir),
        }
        self.log_path = folder / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def run(self, command: str, *, timeout: float = 300) -> str:
        """Run a shell command on this host (a release step, a management command) and return its output."""
        result = subprocess.run(
            command, shell=True, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, f"{self.name}: {command}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def start(self, command: str) -> Host:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process keeps it open
        self.process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.alive(), f"{self.name} exited:\n{self.log()[-5000:]}"
            assert time.monotonic() < deadline, f"{self.name} never logged {text!r}:\n{self.log()[-5000:]}"
            time.sleep(0.5)

    def wait_for_http(self, url: str, *, timeout: float) -> None:
        wait_for_http(url, self.process, name=self.name, log=self.log, timeout=timeout)

    def pids(self) -> set[int]:
        """Process ids of this host's processes (its process group: gunicorn's master and workers, a Celery worker
        and its pool's children): the same ids before and after a promotion mean nothing was restarted."""
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.process.pid:  # the process group (start_new_session: the leader's pid)
                pids.add(int(stat.parent.name))
        return pids


class MlflowServer:
    """`mlflow server` over TCP with its own SQLite store and artifact folder (artifacts proxied through it, so no
    client ever sees the folder). It takes about 20 s to answer and starts uvicorn workers: stopped as a group."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> MlflowServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "mlflow.log", "ab")  # noqa: SIM115 - the server keeps it open
        self.process = subprocess.Popen(
            [
                str(VENV_BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.folder / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.folder / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            cwd=self.folder,
            env={**clean_env(), "MLFLOW_DISABLE_TELEMETRY": "true"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait(self, *, timeout: float = 120) -> None:
        log = self.folder / "mlflow.log"
        wait_for_http(
            f"{self.url}/health",
            self.process,
            name="mlflow server",
            log=lambda: log.read_text(errors="replace"),
            timeout=timeout,
        )

    def api(self, path: str, **params: str) -> dict:
        response = requests.get(f"{self.url}/api/2.0/mlflow/{path}", params=params, timeout=30)
        assert response.status_code == 200, response.text[:500]
        return response.json()

    def versions(self, name: str) -> dict[int, str]:
        """Registered versions of ``name``: version -> the MLflow run that logged it."""
        found = self.api("model-versions/search", filter=f"name='{name}'")
        return {int(v["version"]): v.get("run_id", "") for v in found.get("model_versions", [])}

    def alias(self, name: str, alias: str) -> int | None:
        response = requests.get(
            f"{self.url}/api/2.0/mlflow/registered-models/alias", params={"name": name, "alias": alias}, timeout=30
        )
        if response.status_code in (400, 404) and "not found" in response.text:
            return None
        assert response.status_code == 200, response.text[:500]
        return int(response.json()["model_version"]["version"])
