"""The helper process that opens, prices and decodes the formats whose decoders cannot be stopped midway.

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
Run as ``python -m training.ml.decode_sandbox`` (the caller does this); it imports Pillow, not torch.
"""

from __future__ import annotations

import dataclasses
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

from training.ml import decoding
from training.ml.photo_errors import DecodeTooCostlyError, ImageError, NotAnImageError, TooManyPixelsError
from training.ml.photo_limits import PhotoLimits

# Address space beyond the photo's own limit: the reply, Python's bookkeeping, the codec's small tables.
MEMORY_HEADROOM_BYTES = 96 * 1024 * 1024
RECYCLE_GROWTH_BYTES = 64 * 1024 * 1024
# CPU beyond the photo's budget for what is not decoding (reading the request, writing the reply).
CPU_HEADROOM_SECONDS = 0.1
# A helper that neither answers nor uses CPU (it never should) is given up on after this long.
WALL_TIMEOUT_SECONDS = 60.0
_HEADER = struct.Struct(">II")
_ROOT = Path(__file__).resolve().parents[2]


# --- the caller's side -----------------------------------------------------------------------------------------------


class _Helper:
    def __init__(self) -> None:
        path = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))
        # One malloc arena: each extra one reserves 64 MB of address space, which the memory limit counts.
        env = dict(os.environ, PYTHONPATH=path, MALLOC_ARENA_MAX="1")
        self.pid_of_owner = os.getpid()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "training.ml.decode_sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_ROOT,
            env=env,
        )

    def ask(self, request: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
        header = json.dumps(request).encode()
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(_HEADER.pack(len(header), len(data)) + header)
        stdin.write(data)
        stdin.flush()
        lengths = self._read(_HEADER.size)
        header_length, payload_length = _HEADER.unpack(lengths)
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


def plan(data: bytes, *, target: int, limits: PhotoLimits) -> decoding.DecodePlan:
    """Check and price a photo in the helper (nothing decoded); raises the ImageError that names the problem."""
    reply, _ = _ask({"target": target, "plan_only": True, "limits": _limits_json(limits)}, data, limits)
    return decoding.DecodePlan(**reply["plan"])


def decode(data: bytes, *, target: int, limits: PhotoLimits) -> decoding.DecodedPhoto:
    """Check, price and decode a photo in the helper; the picture comes back reduced to at least ``target``."""
    reply, payload = _ask({"target": target, "plan_only": False, "limits": _limits_json(limits)}, data, limits)
    image = Image.frombytes(reply["mode"], tuple(reply["size"]), payload)
    return decoding.DecodedPhoto(image=image, format=reply["plan"]["format"], orientation=reply["orientation"])


# --- the helper's side ------------------------------------------------------------------------------------------------


def webp_header(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a WebP's first chunk (VP8X, VP8L or VP8), read before libwebp allocates its canvas."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def _price_webp_header(data: bytes, limits: PhotoLimits) -> None:
    size = webp_header(data)
    if size is None:
        return
    width, height = size
    if width * height > limits.max_pixels:
        raise TooManyPixelsError(
            f"the image is {width:,}x{height:,} = {width * height / 1e6:,.1f} megapixels, more than the limit of "
            f"{limits.max_pixels / 1e6:,.1f} megapixels; send a smaller photo"
        )
    memory = int(width * height * 4 * (1 + decoding.DECODER_COPIES["WEBP"]))
    seconds = width * height * decoding.NS_PER_PIXEL["WEBP"] * 1e-9
    if seconds > limits.budget_seconds:
        raise DecodeTooCostlyError(
            f"the image (WEBP, {width}x{height}) would take about {seconds:.1f} s of CPU time to decode, more than "
            f"the limit of {limits.budget_seconds:g} s; send a JPEG or a photo with fewer pixels"
        )
    if memory > limits.max_decode_bytes:
        raise DecodeTooCostlyError(decoding.memory_message("WEBP", width, height, memory, limits))


def handle(data: bytes, *, target: int, limits: PhotoLimits, plan_only: bool) -> tuple[dict[str, Any], bytes]:
    """One photo, in the helper: header price, open, full price, and unless ``plan_only`` decode and reduce."""
    if data[:4] == b"RIFF":
        _price_webp_header(data, limits)
    image = decoding.open_header(data, None)
    priced = decoding.plan_here(data, image, target=target, limits=limits)
    reply: dict[str, Any] = {"plan": dataclasses.asdict(priced)}
    if plan_only:
        return reply, b""
    del image  # libwebp holds a canvas per opened file: the first goes before the second is opened
    image = decoding.open_header(data, None)  # verify() leaves an image unusable
    try:
        image.load()
    except MemoryError:
        raise DecodeTooCostlyError(
            decoding.memory_message(priced.format, *image.size, priced.memory_bytes, limits)
        ) from None
    except Exception as error:
        raise decoding.decode_error(error) from error
    orientation = decoding.exif_orientation(image)
    factor = min(image.size) // max(target, 1)
    if factor >= 2 or image.mode in decoding.CONVERSION_BYTES or image.mode not in _PLAIN_MODES:
        image = decoding.reduce_box(image, max(factor, 1), (0, 0, *image.size))
        if image.mode not in _PLAIN_MODES:
            image = image.convert("RGBA" if "A" in image.mode else "RGB")
    reply.update(mode=image.mode, size=list(image.size), orientation=orientation)
    return reply, image.tobytes()


_PLAIN_MODES = frozenset({"RGB", "RGBA", "L", "LA", "CMYK", "I", "F", "1"})


def _vm_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError
    return data


def main() -> None:  # pragma: no cover - runs in the helper process; tests drive it through decode()
    import resource  # lazy: only the helper process sets its limits; importers of this module never do

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies on the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the caller's terminal is the caller's to handle
    base = _vm_bytes()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    while True:
        try:
            lengths = _read_exact(stdin, _HEADER.size)
        except EOFError:
            return
        header_length, data_length = _HEADER.unpack(lengths)
        request = json.loads(_read_exact(stdin, header_length))
        data = _read_exact(stdin, data_length)
        limits = PhotoLimits(**request["limits"])
        ceiling = base + limits.max_decode_bytes + data_length + MEMORY_HEADROOM_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (ceiling if hard < 0 else min(ceiling, hard), hard))
        signal.setitimer(signal.ITIMER_PROF, limits.budget_seconds + CPU_HEADROOM_SECONDS)
        try:
            reply, payload = handle(data, target=request["target"], limits=limits, plan_only=request["plan_only"])
        except ImageError as error:
            reply, payload = {"error": {"code": error.code, "message": error.message}}, b""
        except MemoryError:
            reply, payload = {"error": {"code": DecodeTooCostlyError.code, "message": _MEMORY}}, b""
        except Exception as error:
            problem = decoding.decode_error(error)
            reply, payload = {"error": {"code": problem.code, "message": problem.message}}, b""
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        del data
        reply["recycle"] = _vm_bytes() > base + RECYCLE_GROWTH_BYTES or "error" in reply and "memory" in str(reply)
        header = json.dumps(reply).encode()
        stdout.write(_HEADER.pack(len(header), len(payload)) + header)
        stdout.write(payload)
        stdout.flush()


_MEMORY = "decoding the image needed more memory than one photo may; send a JPEG or a smaller photo"

if __name__ == "__main__":
    main()
