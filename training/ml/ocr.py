"""A second, general reader of the date: an off-the-shelf OCR engine (PP-OCRv4 through rapidocr-onnxruntime).

Why: the learned reader reads the coins our generator draws and few others (issue 22: 1 % exact on an independent
renderer's coins), while a general text reader trained on millions of printed lines read 70 % of those dates with no
wrong answer. Its weights ship inside its PyPI wheel (ONNX graphs, 16 MB, run on the ONNX Runtime serving already
uses), so nothing downloads at run time.

What: ``read_photo`` decodes a photo at bounded cost (decoding.decode), turns it upright by its EXIF tag, crops the
coin when it is small in the frame (second_look.find_disc, the same disc finder as the second look), downscales it
so that its longer side is ``DET_SIDE`` and runs the engine's text detector, its 0/180 degree line classifier and its
recogniser. Every 4-digit number in the configured year range is a candidate; the most confident wins. Text turned
by 90 degrees is found by the detector as a tall box and turned by the engine, text upside down is turned by the
engine's 0/180 classifier, text at any angle gets a rotated box: a date "1874" on a drawn coin was read at 0.998 turned
by 0, 30, 90 and 180 degrees in one pass (tests/training/ml/test_ocr.py). So one pass (``turns=(0,)``) is the
default; more turns read a photo whose first pass found no year again turned, at one more pass each.

``read_pair`` reads both photos and keeps the more confident year; ``OcrReading`` says which photo and path answered
and how long it took. The engine is one per process, loaded on first use (0.3 s), with one intra-op thread: on the
shared 2-core machine one thread per call was faster under concurrent requests than ONNX Runtime's default pool.

No Django here: the registered pyfunc imports this module.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from training.ml import decoding, second_look

# The detector's input: the longer side of the (coin-cropped) photo, in pixels. PP-OCRv4's detector costs in
# proportion to its input's area; see docs/model.md ("The second reader") for the measured accuracy and ms per side.
DET_SIDE = 480
DECODE_TARGET = 640  # decoded at least this many pixels on the shorter side before the crop (a small coin keeps detail)
TEXT_SCORE = 0.5  # lines the recogniser reads below this are dropped (the engine's own default)
YEAR_PATTERN = re.compile(r"(?<!\d)(\d{4})(?!\d)")
TURNS = (0, 180, 90, 270)  # tried in this order until one finds a year (degrees counter-clockwise)


@dataclass(frozen=True)
class TextBox:
    """One line the engine read: its text, the recogniser's confidence and its corners in the analysed image."""

    text: str
    score: float
    box: list[list[float]]


@dataclass(frozen=True)
class OcrReading:
    """What the OCR read on a photo or a pair: the year (None when no plausible year), its confidence, why.

    ``path``: "detector" (text found on the whole coin), "none" (no year found); ``side``: "front" or "back" for a
    pair; ``turn``: the degrees the photo was turned when the year was found; ``ms``: wall time of the reading.
    """

    year: int | None
    confidence: float
    path: str
    ms: float
    turn: int = 0
    side: str = ""
    boxes: list[TextBox] = field(default_factory=list)
    candidates: list[tuple[int, float]] = field(default_factory=list)  # every plausible year read, with confidence
    photos: int = 1  # for a pair: how many of its photos read ``year`` (0 when none)

    def as_details(self) -> dict[str, Any]:
        """The prediction details' "ocr" entry: JSON-friendly, small, and the same on every run (no time in it: the
        answers in-process, through /api/predict and under `mlflow models serve` are compared)."""
        return {
            "year": self.year,
            "confidence": round(float(self.confidence), 4),
            "path": self.path,
            "side": self.side,
            "turn": self.turn,
            "photos": self.photos,
        }


_ENGINE: Any = None
_ENGINE_LOCK = threading.Lock()


def available() -> bool:
    """Whether the OCR engine can be imported here (a model served without the package answers with the reader)."""
    try:
        import rapidocr_onnxruntime  # noqa: F401  (lazy: a probe; the engine itself loads on first read)
    except ImportError:
        return False
    return True


def engine() -> Any:
    """The process's one OCR engine, loaded on first use (thread-safe)."""
    global _ENGINE
    if _ENGINE is None:
        with _ENGINE_LOCK:
            if _ENGINE is None:
                from rapidocr_onnxruntime import RapidOCR  # lazy: 0.3 s, and only where the OCR runs

                _ENGINE = RapidOCR(
                    intra_op_num_threads=1,
                    inter_op_num_threads=1,
                    det_limit_side_len=DET_SIDE,
                    det_limit_type="max",
                    text_score=TEXT_SCORE,
                    print_verbose=False,
                )
    return _ENGINE


def ocr_view(data: bytes, *, side: int | None = None, **limits: int) -> Image.Image:
    """The photo as the OCR sees it: upright by EXIF, the coin cropped when small in the frame, ``side`` px long
    (``DET_SIDE`` by default)."""
    side = side or DET_SIDE
    photo = decoding.decode(data, target=DECODE_TARGET, **limits)
    image = decoding.transpose(photo.image, photo.orientation).convert("RGB")
    if min(image.size) >= 2 * side:
        disc = second_look.find_disc(image)
        if disc is not None:
            cx, cy, r = disc
            if r < second_look.SMALL_DISC * min(image.size):
                half = 1.1 * r
                image = second_look.crop_padded(
                    image, (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
                )
    scale = side / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    return image


def years_in(text: str, year_min: int, year_max: int) -> list[int]:
    """Every 4-digit number of ``text`` (spaces between digits closed up) within year_min..year_max."""
    compact = re.sub(r"(?<=\d)\s+(?=\d)", "", text)
    return [int(m) for m in YEAR_PATTERN.findall(compact) if year_min <= int(m) <= year_max]


def read_image(image: Image.Image, year_min: int, year_max: int, *, turns: Sequence[int] = TURNS[:1]) -> OcrReading:
    """Read the year on an upright-or-not coin image, turning it by ``turns`` in order until one finds a year."""
    started = time.perf_counter()
    rgb = np.asarray(image.convert("RGB"))
    all_boxes: list[TextBox] = []
    for turn in turns:
        pixels = np.ascontiguousarray(np.rot90(rgb, turn // 90)) if turn else rgb
        result, _elapsed = engine()(pixels[:, :, ::-1])  # the engine takes OpenCV's BGR
        boxes = [TextBox(str(text), float(score), np.asarray(box).tolist()) for box, text, score in (result or [])]
        all_boxes.extend(boxes)
        candidates = sorted(
            ((year, box.score) for box in boxes for year in years_in(box.text, year_min, year_max)),
            key=lambda c: -c[1],
        )
        if candidates:
            year, confidence = candidates[0]
            return OcrReading(
                year, confidence, "detector", (time.perf_counter() - started) * 1000, turn, "", boxes, candidates
            )
    return OcrReading(None, 0.0, "none", (time.perf_counter() - started) * 1000, 0, "", all_boxes, [], photos=0)


def read_photo(
    data: bytes, year_min: int, year_max: int, *, turns: Sequence[int] = TURNS[:1], **limits: int
) -> OcrReading:
    """Decode one photo (bounded cost, EXIF upright, the coin cropped) and read its year; see module docstring."""
    started = time.perf_counter()
    reading = read_image(ocr_view(data, **limits), year_min, year_max, turns=turns)
    return _with(reading, ms=(time.perf_counter() - started) * 1000)


def read_pair(
    front: bytes, back: bytes, year_min: int, year_max: int, *, turns: Sequence[int] = TURNS[:1], **limits: int
) -> OcrReading:
    """Both photos read; the more confident year wins (agreement between the two photos adds to its confidence)."""
    started = time.perf_counter()
    readings = [
        _with(read_photo(data, year_min, year_max, turns=turns, **limits), side=side)
        for side, data in (("front", front), ("back", back))
    ]
    found = [r for r in readings if r.year is not None]
    ms = (time.perf_counter() - started) * 1000
    if not found:
        return OcrReading(None, 0.0, "none", ms, 0, "", [b for r in readings for b in r.boxes], [], photos=0)
    best = max(found, key=lambda r: r.confidence)
    candidates = sorted((c for r in readings for c in r.candidates), key=lambda c: -c[1])
    photos = sum(any(year == best.year for year, _c in r.candidates) for r in readings)
    return _with(best, ms=ms, candidates=candidates, photos=photos)


def _with(reading: OcrReading, **changes: Any) -> OcrReading:
    return dataclasses.replace(reading, **changes)
