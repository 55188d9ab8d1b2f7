"""Hostile photos built from bytes and Pillow, and what one costs: CPU seconds (this process and the decode helper)
and peak RSS growth (both), for the tests that check every path refuses them cheaply."""

from __future__ import annotations

import functools
import io
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image


def _save(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _segments(jpeg: bytes) -> list[bytes]:
    """The marker segments of a JPEG from SOI up to (not including) its first SOS."""
    out, at = [], 2
    while at < len(jpeg):
        marker = jpeg[at : at + 2]
        if marker == b"\xff\xda":
            break
        length = struct.unpack(">H", jpeg[at + 2 : at + 4])[0]
        out.append(jpeg[at : at + 2 + length])
        at += 2 + length
    return out


def _sos(components: list[tuple[int, int]]) -> bytes:
    body = bytes([len(components)]) + b"".join(bytes([cid, tables]) for cid, tables in components) + b"\x00\x3f\x00"
    return b"\xff\xda" + struct.pack(">H", 2 + len(body)) + body


@functools.cache
def baseline_scan_bomb(side: int = 7000, scans: int = 5000) -> bytes:
    """A *baseline* JPEG of side x side: three colour scans, one per component, then ``scans`` header-only luminance
    scans, and no entropy-coded data at all (about 50 KB): libjpeg decodes every scan over the whole image."""
    small = _save(Image.new("RGB", (8, 8), (120, 110, 90)), "JPEG", quality=90, subsampling=0)
    head = b""
    for segment in _segments(small):
        if segment[:2] == b"\xff\xc0":  # SOF0: precision, height, width
            segment = segment[:5] + struct.pack(">HH", side, side) + segment[9:]
        head += segment
    colour = _sos([(1, 0x00)]) + _sos([(2, 0x11)]) + _sos([(3, 0x11)])
    return b"\xff\xd8" + head + colour + _sos([(1, 0x00)]) * scans + b"\xff\xd9"


@functools.cache
def many_frames(fmt: str, frames: int = 300, side: int = 256) -> bytes:
    """An animation (WebP, GIF) or a multi-page file (TIFF, deflated) of ``frames`` frames."""
    pictures = [Image.new("RGB", (side, side), (i % 256, 90, 40)) for i in range(frames)]
    params = {"WEBP": {"lossless": True}, "TIFF": {"compression": "tiff_adobe_deflate"}}.get(fmt, {})
    return _save(pictures[0], fmt, save_all=True, append_images=pictures[1:], **params)


@functools.cache
def lossless_webp_flood(side: int = 4470) -> bytes:
    """A lossless WebP of one colour: under 1 KB that libwebp expands to side x side x 4 bytes, several times."""
    return _save(Image.new("RGB", (side, side), (200, 180, 40)), "WEBP", lossless=True)


@functools.cache
def rle_bmp_flood(side: int = 7000) -> bytes:
    """An 8-bit RLE BMP of side x side (about 400 KB): a palette image that must become RGB at full size."""
    row = b""
    left = side
    while left:
        run = min(255, left)
        row += bytes([run, 1])
        left -= run
    pixels = (row + b"\x00\x00") * side + b"\x00\x01"
    palette = b"".join(bytes([i, 255 - i, i // 2, 0]) for i in range(256))  # colours: Pillow opens it as "P"
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return header + info + palette + pixels


HOSTILE = {
    "baseline JPEG, 7000², 5,000 header-only scans": baseline_scan_bomb,
    "WebP, 300 frames": lambda: many_frames("WEBP"),
    "GIF, 300 frames": lambda: many_frames("GIF"),
    "TIFF, 300 pages": lambda: many_frames("TIFF"),
    "lossless WebP, 4470²": lossless_webp_flood,
    "RLE BMP, 7000²": rle_bmp_flood,
}


@dataclass
class Cost:
    cpu_seconds: float  # this process (all threads) plus the decode helper
    rss_growth_mb: float  # peak over start, this process plus the helper's peak
    outcome: object

    def __str__(self) -> str:
        return f"{self.cpu_seconds:.3f} s CPU, {self.rss_growth_mb:.1f} MB RSS growth"


def _status(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _cpu(pid: int | str) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The threads that do a request's work: the caller's own (Django's test client runs the whole request in it; a lone
# caller runs the forward pass itself) and the photo writers. Threads that earlier tests of the same process left
# running are not the photo's: the PostgreSQL stream measured 1.05 s of process CPU twice around refusals that cost
# 0.04-0.07 s alone (a background training run or monitoring refresh, a housekeeping tick may still be running).
REQUEST_THREAD_PREFIXES = ("photo-writer",)


def _request_threads_cpu() -> float:
    """CPU used so far by this thread and by the request-serving pools (Linux: /proc/self/task/<tid>/stat)."""
    total = time.thread_time()
    for thread in threading.enumerate():
        if thread.name.startswith(REQUEST_THREAD_PREFIXES) and thread.native_id is not None:
            try:
                total += _cpu(f"self/task/{thread.native_id}")
            except FileNotFoundError:  # ended meanwhile
                pass
    return total


def _helper_pid() -> int | None:
    from training.ml import decode_sandbox

    helper = decode_sandbox._helper
    return helper.process.pid if helper is not None and helper.process.poll() is None else None


def cost_of(call: Callable[[], object]) -> Cost:
    """Run ``call`` with a started decode helper; CPU of the threads that serve the request (this one and the photo
    writers, ``REQUEST_THREAD_PREFIXES``) and of the helper; peak RSS growth of this process and the helper."""
    from training.ml import decode_sandbox

    still = _save(Image.new("RGB", (8, 8)), "WEBP")
    decode_sandbox.plan(still, target=1, limits=decode_sandbox.PhotoLimits())  # start the helper now
    helper = _helper_pid()
    helper_cpu = _cpu(helper) if helper else 0.0
    for pid in ("self", helper) if helper else ("self",):
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")  # reset the peak RSS (VmHWM) of this process and of the helper
    rss = _status("self", "VmRSS")
    helper_rss = _status(helper, "VmRSS") if helper else 0
    started = _request_threads_cpu()
    try:
        outcome = call()
    except Exception as error:
        outcome = error
    cpu = _request_threads_cpu() - started
    growth = _status("self", "VmHWM") - rss
    if helper:
        try:
            cpu += _cpu(helper) - helper_cpu
            growth += max(0, _status(helper, "VmHWM") - helper_rss)
        except FileNotFoundError:  # ended by its limits mid-photo: it cannot have used more than they allow
            pass
    return Cost(cpu, growth / 2**20, outcome)
