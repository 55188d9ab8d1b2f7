"""The second reader: training.ml.ocr on drawn coins (the real engine; about 0.2 s a photo on 2 cores)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.training.ml.ocr_photos import dated_coin
from training.ml import ocr

pytestmark = pytest.mark.skipif(not ocr.available(), reason="rapidocr-onnxruntime is not installed")


def test_years_in_keeps_four_digit_numbers_inside_the_range():
    assert ocr.years_in("ANNO 1874", 1700, 2025) == [1874]
    assert ocr.years_in("1 8 7 4", 1700, 2025) == [1874]  # spaces between engraved digits closed up
    assert ocr.years_in("No. 18745 2150 0999", 1700, 2025) == []  # five digits, future, too early
    assert ocr.years_in("50 KOPEK 1912 / 1913", 1700, 2025) == [1912, 1913]


@pytest.mark.parametrize("turn", [0, 90, 180, 30])
def test_a_date_is_read_at_any_turn_in_one_pass(turn):
    reading = ocr.read_photo(dated_coin("1874", turn=turn), 1700, 2025)
    assert reading.year == 1874 and reading.confidence > 0.9 and reading.path == "detector"
    assert reading.ms > 0 and any("1874" in box.text for box in reading.boxes)


def test_text_that_is_no_year_reads_none():
    for text in ("LIBERTY", "2150"):
        reading = ocr.read_photo(dated_coin(text), 1700, 2025)
        assert reading.year is None and reading.path == "none" and reading.confidence == 0.0


def test_a_pair_counts_the_photos_that_read_its_year():
    both = ocr.read_pair(dated_coin("1874"), dated_coin("1874", turn=180), 1700, 2025)
    one = ocr.read_pair(dated_coin("1874"), dated_coin("LIBERTY"), 1700, 2025)
    none = ocr.read_pair(dated_coin("LIBERTY"), dated_coin("EAGLE"), 1700, 2025)
    assert (both.year, both.photos) == (1874, 2)
    assert (one.year, one.photos, one.side) == (1874, 1, "front")
    assert (none.year, none.photos) == (None, 0)
    assert set(both.as_details()) == {"year", "confidence", "path", "side", "turn", "photos"}  # no time: comparable


def test_a_small_coin_in_a_large_frame_is_cropped_before_reading():
    coin = Image.open(io.BytesIO(dated_coin("1921"))).resize((300, 300))
    frame = Image.new("RGB", (2400, 1800), (150, 150, 160))
    frame.paste(coin, (1700, 300))
    buffer = io.BytesIO()
    frame.save(buffer, "JPEG", quality=90)
    view = ocr.ocr_view(buffer.getvalue())
    assert max(view.size) <= ocr.DET_SIDE and view.size[0] < 1.5 * view.size[1]  # the coin's square, not the frame
    assert ocr.read_image(view, 1700, 2025).year == 1921
