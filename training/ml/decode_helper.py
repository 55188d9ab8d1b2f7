"""The helper process's side of training/ml/decode_sandbox.py (read its docstring first): read a photo and its
limits from stdin, price it from its header, decode it under a CPU timer and an address-space limit, write the
reduced picture back. Run as ``python -m training.ml.decode_helper`` by decode_sandbox; it imports Pillow, not torch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from typing import Any

from training.ml import decoding
from training.ml.decode_sandbox import (
    CPU_HEADROOM_SECONDS,
    MEMORY_HEADROOM_BYTES,
    RECYCLE_GROWTH_BYTES,
    WIRE_HEADER,
)
from training.ml.photo_errors import DecodeTooCostlyError, ImageError, TooManyPixelsError
from training.ml.photo_limits import PhotoLimits


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
            lengths = _read_exact(stdin, WIRE_HEADER.size)
        except EOFError:
            return
        header_length, data_length = WIRE_HEADER.unpack(lengths)
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
        stdout.write(WIRE_HEADER.pack(len(header), len(payload)) + header)
        stdout.write(payload)
        stdout.flush()


_MEMORY = "decoding the image needed more memory than one photo may; send a JPEG or a smaller photo"

if __name__ == "__main__":
    main()
