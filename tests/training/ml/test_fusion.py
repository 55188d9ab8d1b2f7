"""The OCR's reading fused with the reader's year distribution (training.ml.fusion)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.ml.ocr_photos import dated_coin
from training.ml import fusion, ocr, second_look
from training.ml.config import seed_regression

CONFIG = seed_regression(head="reader")
CALIBRATION = {"coin_threshold": 0.5, "read_threshold": 0.3}
YEARS = np.arange(CONFIG.year_min, CONFIG.year_max + 1)


def row(p: np.ndarray, coin: float) -> np.ndarray:
    """An ensemble output row for the distribution p (year, low, high and read score as the ensemble takes them)."""
    year = float(YEARS[int(np.argmax(p))])
    read = float(p[np.abs(YEARS - year) <= 1].sum())
    return np.concatenate([[year, year - 2, year + 2, coin, read], p]).astype(np.float32)


def peaked(year: int, mass: float) -> np.ndarray:
    p = np.full(len(YEARS), (1 - mass) / (len(YEARS) - 1))
    p[YEARS == year] = mass
    return p


def reading(year: int | None, confidence: float = 0.99, photos: int = 1) -> ocr.OcrReading:
    return ocr.OcrReading(year, confidence, "detector" if year else "none", 1.0, photos=photos)


def test_an_unsure_reader_takes_the_ocr_year():
    fused, readers = fusion.fuse_row(row(peaked(1850, 0.05), coin=0.9), reading(1874), 1, CONFIG, CALIBRATION)
    assert int(fused[0]) == 1874 and readers == "ocr"
    assert fused[4] > 0.8 and fused[1] <= 1874 <= fused[2]
    assert fused[5:].sum() == pytest.approx(1.0, abs=1e-4)


def test_a_sure_reader_is_not_overruled_by_one_photos_ocr():
    fused, readers = fusion.fuse_row(row(peaked(1850, 0.995), coin=0.99), reading(1874), 1, CONFIG, CALIBRATION)
    assert int(fused[0]) == 1850 and readers == "reader"


def test_agreeing_readers_sharpen_the_answer():
    before = row(peaked(1874, 0.5), coin=0.9)
    fused, readers = fusion.fuse_row(before, reading(1874, photos=2), 2, CONFIG, CALIBRATION)
    assert int(fused[0]) == 1874 and readers == "reader+ocr" and fused[4] > before[4]


def test_a_year_both_photos_read_is_evidence_of_a_coin():
    unsure_coin = row(np.full(len(YEARS), 1 / len(YEARS)), coin=0.2)
    both, _ = fusion.fuse_row(unsure_coin, reading(1874, photos=2), 2, CONFIG, CALIBRATION)
    one, _ = fusion.fuse_row(unsure_coin, reading(1874), 1, CONFIG, CALIBRATION)
    assert both[3] >= CALIBRATION["coin_threshold"] and both[3] > one[3] >= unsure_coin[3]
    assert int(both[0]) == 1874


def test_an_unconfident_or_empty_reading_changes_nothing():
    before = row(peaked(1850, 0.3), coin=0.9)
    for weak in (reading(1874, confidence=0.5), reading(None)):
        fused, readers = fusion.fuse_row(before, weak, 1, CONFIG, CALIBRATION)
        assert np.allclose(fused, before) and readers == "reader"


def test_a_regression_row_has_nothing_to_fuse():
    before = np.array([1874.0, 1870.0, 1878.0])
    fused, readers = fusion.fuse_row(before, reading(1900), 2, CONFIG, CALIBRATION)
    assert np.allclose(fused, before) and readers == "reader"


@pytest.mark.skipif(not ocr.available(), reason="rapidocr-onnxruntime is not installed")
def test_the_ocr_runs_only_on_the_pairs_the_reader_is_unsure_of():
    pairs = [(dated_coin("1874"), dated_coin("1874", turn=180))] * 2
    rows = np.stack([row(peaked(1874, 0.99), coin=0.99), row(peaked(1850, 0.05), coin=0.3)])
    assert second_look.unsure(rows, CALIBRATION).tolist() == [False, True]
    fused = fusion.read_with_ocr(pairs, second_look.Looked(rows, [None, None]), CONFIG, CALIBRATION, run=True)
    assert fused.ocr[0] is None and fused.readers[0] == "reader" and np.array_equal(fused.rows[0], rows[0])
    assert fused.ocr[1]["year"] == 1874 and fused.ocr[1]["photos"] == 2 and fused.readers[1] == "ocr"
    assert int(fused.rows[1, 0]) == 1874 and fused.rows[1, 3] >= 0.5
    details = fusion.annotate({"year": 1874}, fused, 1)
    assert details["readers"] == "ocr" and details["ocr"]["year"] == 1874


def test_coinsite_ocr_0_turns_the_ocr_off(monkeypatch):
    monkeypatch.setenv("COINSITE_OCR", "0")
    rows = np.stack([row(peaked(1850, 0.05), coin=0.3)])
    fused = fusion.read_with_ocr([(b"", b"")], second_look.Looked(rows, [None]), CONFIG, CALIBRATION)
    assert fused.ocr == [None] and fused.readers == ["reader"]
