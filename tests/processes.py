"""Stopping the servers the tests start in their own process group (``start_new_session=True``)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(process: subprocess.Popen, *, grace_seconds: float = 15.0, kill_seconds: float = 5.0) -> None:
    """Stop a server started with start_new_session=True and every child it spawned: SIGTERM to the group, SIGKILL
    after ``grace_seconds``; when the leader is already gone, its children may still hold the port."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=kill_seconds)
    else:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
