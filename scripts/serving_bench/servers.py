"""The servers under test, their CPU time, and the databases (b) runs on.

CPU time is read from /proc (no psutil in the requirements): utime + stime of every process in the server's tree
(gunicorn's master and workers; `mlflow models serve`, the uvicorn it execs and uvicorn's workers), plus cutime +
cstime so that a worker that exits between two readings keeps its share. For (b) on PostgreSQL the backends serving
the bench database are counted beside it (their title is `postgres: <user> <database> ...`): a request's SQL work
there is part of what the request costs, as SQLite's is inside the web workers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
QUIET_CPU_SHARE = 0.05  # a server using under 5% of one core for QUIET_WINDOW seconds has finished starting
QUIET_WINDOW = 1.0


@dataclass
class Server:
    """A server started by the bench: its process (a session leader, so its whole group is stopped together)."""

    label: str
    process: subprocess.Popen
    base_url: str
    log: Path
    database: str | None = None  # PostgreSQL database whose backends count toward its CPU

    def pids(self) -> list[int]:
        return tree_pids(self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU seconds of the server's process tree so far (a reaped worker's time is in its parent's cutime)."""
        return cpu_seconds(self.pids())

    def database_cpu(self) -> dict[int, float]:
        """CPU seconds so far of each PostgreSQL backend of its database (none on SQLite)."""
        return {pid: cpu_seconds([pid]) for pid in backend_pids(self.database)} if self.database else {}

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # the process exited meanwhile
        return None
    return raw[raw.rindex(")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime + cutime + cstime of these processes, in seconds (0 for those gone)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += sum(int(value) for value in fields[11:15])
    return total / TICKS


def database_cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the backends used between two readings: per backend, as they are not our children (one that
    exited meanwhile loses only its own last share, instead of subtracting its whole earlier time)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def backend_pids(database: str) -> list[int]:
    """The PostgreSQL backends connected to `database` on this machine, by their process title."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if is_backend_of(title, database):
            pids.append(int(entry))
    return pids


def is_backend_of(title: str, database: str) -> bool:
    """Whether a process title is a backend's for `database`: `postgres: [cluster:] user database host(port) state`
    (Debian's clusters put `15/main:` after `postgres:`; the shared writers and launchers name no database)."""
    words = title.split()
    return bool(words) and words[0] == "postgres:" and database in words[1:4]


def start(
    label: str,
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    base_url: str,
    log: Path,
    database: str | None = None,
) -> Server:
    """Start a server in its own session, its output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, start_new_session=True, stdout=sink, stderr=subprocess.STDOUT
        )
    return Server(label=label, process=process, base_url=base_url, log=log, database=database)


def wait_ready(server: Server, path: str, timeout: float) -> float:
    """Poll `path` until the server answers (any HTTP status), then until its tree is quiet (workers that are still
    loading the model would otherwise share the cores with the first measurements). Returns seconds taken to answer."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.label} exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            urllib.request.urlopen(server.base_url + path, timeout=2).close()
            break
        except urllib.error.HTTPError:
            break
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.label} did not answer within {timeout}s:\n{server.log_tail()}") from None
            time.sleep(0.2)
    answered = time.monotonic() - started
    while time.monotonic() < deadline:
        before = cpu_seconds(server.pids())
        time.sleep(QUIET_WINDOW)
        if cpu_seconds(server.pids()) - before < QUIET_CPU_SHARE * QUIET_WINDOW:
            break
    return answered


def stop(server: Server) -> None:
    """SIGTERM to the server's process group, SIGKILL if it is still there 20 s later."""
    process = server.process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def venv_tool(name: str) -> str:
    """A console script of the interpreter running the bench (its venv's bin), whatever the working tree."""
    return str(Path(sys.executable).parent / name)


def manage(root: Path, env: dict[str, str], *args: str) -> str:
    """Run `manage.py <args>` with `env`; its output, or RuntimeError with it."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


# The bench user and its token; and the Production version's mirror row, which a deployed site has had since its
# first prediction: on a fresh database the first request would otherwise make it (an MLflow registry query, 26 ms of
# CPU here) and the first-prediction line would time a first-ever request, not the first one after a restart.
SETUP_SNIPPET = (
    "from django.contrib.auth import get_user_model\n"
    "from rest_framework.authtoken.models import Token\n"
    "from registry import gateway\n"
    "from registry.services import model_version_mirror\n"
    "version = gateway.alias_version(gateway.PRODUCTION_ALIAS)\n"
    "if version is not None:\n"
    "    model_version_mirror(version=version)\n"
    "user, _ = get_user_model().objects.get_or_create(username='bench')\n"
    "print(Token.objects.get_or_create(user=user)[0].key)\n"
)


def prepare_database(root: Path, env: dict[str, str]) -> str:
    """Migrate the database of `env` (DATABASE_URL), give it the Production version's mirror row, and return the API
    token of its `bench` user."""
    manage(root, env, "migrate", "--noinput")
    return manage(root, env, "shell", "-c", SETUP_SNIPPET).strip().splitlines()[-1]


def postgres_create(admin_url: str, name: str) -> None:
    import psycopg  # the PostgreSQL driver Django uses; only needed when (b) runs on PostgreSQL

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def postgres_drop(admin_url: str, name: str) -> None:
    import psycopg  # as in postgres_create

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
