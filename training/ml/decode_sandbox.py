"""The caller's side of the helper process that opens, prices and decodes the formats whose decoders cannot be stopped midway.

Why a process: libwebp, libtiff, libheif and libavif decode a whole picture in one call (libwebp allocates its canvas
when the file is merely opened), so no CPU clock checked between reads can stop them, and a thread cannot be given
a hard CPU or memory limit. The helper can: before each photo it arms a CPU timer (``ITIMER_PROF``, whose default
action ends the process) at the photo's budget and lowers its address-space limit (``RLIMIT_AS``) to what it held
at start plus the photo's memory limit. A photo that gets past its price is stopped there; the caller answers 413
and starts a new helper for the next photo. The helper also prices from the header first (WebP from its RIFF chunks,
before libwebp allocates anything), so an ordinary refusal costs no decode at all.

One helper per process that needs it (web worker, Celery worker), started on first use (about 0.15 s of CPU) and
shared by its threads one photo at a time; a forked child starts its own. It hands back the picture box-reduced to
at least ``target`` pixels on its shorter side (as libjpeg's reduced-scale decode does for JPEG), so a 20 MP photo
crosses the pipe as about 0.5 MB. It is restarted when its memory has grown by more than RECYCLE_GROWTH_BYTES, so a
large decode's memory is given back to the system.

Wire format, both ways: two big-endian uint32 lengths (JSON header, payload), then the JSON, then the payload bytes.
This module is the caller's side; the helper's side is training/ml/decode_helper.py, run as
``python -m training.ml.decode_helper`` (the caller does this); it imports Pillow, not torch.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from PIL import Image

from training.ml.photo_errors import DecodeTooCostlyError, ImageError, NotAnImageError
from training.ml.photo_limits import PhotoLimits

# Address space beyond the photo's own limit: the reply, Python's bookkeeping, the codec's small tables.
MEMORY_HEADROOM_BYTES = 96 * 1024 * 1024
RECYCLE_GROWTH_BYTES = 64 * 1024 * 1024
# CPU beyond the photo's budget for what is not decoding (reading the request, writing the reply).
CPU_HEADROOM_SECONDS = 0.1
# A helper that neither answers nor uses CPU (it never should) is given up on after this long.
WALL_TIMEOUT_SECONDS = 60.0
WIRE_HEADER = struct.Struct(">II")
_ROOT = Path(__file__).resolve().parents[2]


# --- the caller's side -----------------------------------------------------------------------------------------------


class _Helper:
    def __init__(self) -> None:
        path = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))
        # One malloc arena: each extra one reserves 64 MB of address space, which the memory limit counts.
        env = dict(os.environ, PYTHONPATH=path, MALLOC_ARENA_MAX="1")
        self.pid_of_owner = os.getpid()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "training.ml.decode_helper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_ROOT,
            env=env,
        )

    def ask(self, request: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
        header = json.dumps(request).encode()
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(WIRE_HEADER.pack(len(header), len(data)) + header)
        stdin.write(data)
        stdin.flush()
        lengths = self._read(WIRE_HEADER.size)
        header_length, payload_length = WIRE_HEADER.unpack(lengths)
        reply = json.loads(self._read(header_length))
        return reply, self._read(payload_length)

    def _read(self, n: int) -> bytes:
        stdout = self.process.stdout
        assert stdout is not None
        chunks, left = [], n
        while left:
            ready, _, _ = select.select([stdout], [], [], WALL_TIMEOUT_SECONDS)
            chunk = os.read(stdout.fileno(), min(left, 1 << 20)) if ready else b""
            if not chunk:
                raise _HelperGone()
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def stop(self) -> int | None:
        """End the helper; its exit status (negative: the signal that ended it)."""
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()


class _HelperGone(Exception):
    pass


_lock = threading.Lock()
_helper: _Helper | None = None


def _ask(request: dict[str, Any], data: bytes, limits: PhotoLimits) -> tuple[dict[str, Any], bytes]:
    global _helper
    with _lock:
        if _helper is None or _helper.pid_of_owner != os.getpid() or _helper.process.poll() is not None:
            _helper = _Helper()  # first use, a forked child, or a helper ended by its last photo
        helper = _helper
        try:
            reply, payload = helper.ask(request, data)
        except (_HelperGone, BrokenPipeError, OSError):
            status = helper.stop()
            _helper = None
            raise _ended_error(status, limits) from None
        if reply.get("recycle"):
            helper.stop()
            _helper = None
    if "error" in reply:
        raise _error_from(reply["error"])
    return reply, payload


def _ended_error(status: int | None, limits: PhotoLimits) -> ImageError:
    """The error for a helper that ended mid-photo: its CPU timer (SIGPROF) or memory limit stopped it."""
    if status in (-signal.SIGPROF, -signal.SIGXCPU, -signal.SIGKILL):
        return DecodeTooCostlyError(
            f"decoding the image took more than {limits.budget_seconds:g} s of CPU time and was stopped; "
            "send it as a baseline JPEG"
        )
    return DecodeTooCostlyError(
        "decoding the image needed more memory or time than one photo may and was stopped; send a JPEG or a "
        "smaller photo"
    )


def _error_from(error: dict[str, str]) -> ImageError:
    from training.ml import photo_errors  # lazy: the module's own names shadow the classes imported above

    classes = {
        cls.code: cls for cls in vars(photo_errors).values() if isinstance(cls, type) and issubclass(cls, ImageError)
    }
    return classes.get(error["code"], NotAnImageError)(error["message"])


def _limits_json(limits: PhotoLimits) -> dict[str, Any]:
    return {
        "max_bytes": limits.max_bytes,
        "max_pixels": limits.max_pixels,
        "budget_seconds": limits.budget_seconds,
        "max_decode_bytes": limits.max_decode_bytes,
    }


def plan(data: bytes, *, target: int, limits: PhotoLimits) -> dict[str, Any]:
    """Check and price a photo in the helper (nothing decoded): the fields of decoding.DecodePlan; raises the
    ImageError that names the problem."""
    reply, _ = _ask({"target": target, "plan_only": True, "limits": _limits_json(limits)}, data, limits)
    return reply["plan"]


def decode(data: bytes, *, target: int, limits: PhotoLimits) -> tuple[Image.Image, str, int]:
    """Check, price and decode a photo in the helper: (the picture reduced to at least ``target``, its format, its
    EXIF orientation)."""
    reply, payload = _ask({"target": target, "plan_only": False, "limits": _limits_json(limits)}, data, limits)
    image = Image.frombytes(reply["mode"], tuple(reply["size"]), payload)
    return image, reply["plan"]["format"], reply["orientation"]
