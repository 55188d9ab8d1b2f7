"""The second look: a coin found and cropped in a large frame, a photo turned without EXIF read like an upright one,
and no second look where the first read is sure."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from training.ml import second_look, synthetic
from training.ml.config import seed_regression
from training.ml.ensemble import CoinYearEnsemble, EnsemblePredictor
from training.ml.model import build_model

CALIBRATION = {"coin_threshold": 0.5, "read_threshold": 0.15}


@pytest.fixture(scope="module")
def base_reader() -> EnsemblePredictor:
    """The committed pretrained date reader (training/ml/base/date_reader.pt) as a one-model ensemble on PyTorch."""
    torch.manual_seed(0)
    config = seed_regression(head="reader", init_from="base", image_size=192, reader_width=64)
    ensemble = CoinYearEnsemble([build_model(config).eval()], config, 0.0, calibration=CALIBRATION)
    return EnsemblePredictor.from_torch(ensemble)


def _jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)  # no EXIF: nothing says which way is up
    return buffer.getvalue()


def _turned(data: bytes, degrees: int) -> bytes:
    return _jpeg(Image.open(io.BytesIO(data)).rotate(degrees, expand=True))


def test_a_demo_coin_turned_90_degrees_without_exif_is_read_like_the_upright_one(base_reader):
    front, back = synthetic.generate_coin_jpegs(1900, 1, size=256)
    upright = base_reader.read_bytes([(front, back)], CALIBRATION)
    assert round(float(upright.rows[0, 0])) == 1900 and upright.notes == [None]

    turned = [(_turned(front, 90), _turned(back, 90))]
    first = base_reader.predict_bytes(turned)[0]
    assert round(float(first[0])) != 1900 or first[4] < second_look.SURE_READ  # the first look alone misreads it

    looked = base_reader.read_bytes(turned, CALIBRATION)
    assert round(float(looked.rows[0, 0])) == 1900
    assert looked.rows[0, 4] >= second_look.SURE_READ
    assert "turned 90°" in looked.notes[0]


def test_front_and_back_turned_differently_are_each_turned_back(base_reader):
    front, back = synthetic.generate_coin_jpegs(1975, 3, size=256)
    looked = base_reader.read_bytes([(_turned(front, 180), _turned(back, 270))], CALIBRATION)
    assert round(float(looked.rows[0, 0])) == 1975
    assert "turned 180°" in looked.notes[0] or "turned 270°" in looked.notes[0]


def test_a_sure_first_read_takes_no_second_look(base_reader, monkeypatch):
    front, back = synthetic.generate_coin_jpegs(1850, 2, size=256)
    rows = base_reader.predict_bytes([(front, back)])
    assert rows[0, 4] >= second_look.SURE_READ and rows[0, 3] >= 0.5

    def no_second_look(*args, **kwargs):
        raise AssertionError("a sure first read must not be decoded again")

    monkeypatch.setattr(second_look, "framed_view", no_second_look)
    looked = base_reader.read_bytes([(front, back)], CALIBRATION)
    assert looked.notes == [None]
    np.testing.assert_array_equal(looked.rows, rows)


def test_unsure_rows_are_the_unread_and_the_not_coins():
    rows = np.zeros((3, 6))
    rows[:, 3] = [0.9, 0.9, 0.2]  # coin score
    rows[:, 4] = [0.95, 0.5, 0.99]  # read score
    assert second_look.unsure(rows, CALIBRATION).tolist() == [False, True, True]
    assert not second_look.unsure(np.zeros((2, 3)), CALIBRATION).any()  # a regression ensemble: nothing to judge


def _table_with_coin(size: tuple[int, int], centre: tuple[int, int], radius: int) -> Image.Image:
    """A large, softly lit plain table with one bright coin (a rim and some relief inside) on it."""
    rng = np.random.default_rng(0)
    light = rng.random((6, 8)).astype(np.float32) * 40
    table = np.asarray(Image.fromarray(light, "F").resize(size, Image.BICUBIC), dtype=np.float32) + 70
    frame = Image.fromarray(np.clip(table, 0, 255).astype(np.uint8), "L").convert("RGB")
    draw = ImageDraw.Draw(frame)
    cx, cy = centre
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=(200, 190, 150))
    draw.ellipse(
        [cx - 0.85 * radius, cy - 0.85 * radius, cx + 0.85 * radius, cy + 0.85 * radius], outline=(120, 110, 90)
    )
    draw.text((cx - radius // 3, cy), "1900", fill=(90, 80, 60))
    return frame.filter(ImageFilter.GaussianBlur(2))


@pytest.mark.parametrize(
    ("size", "centre", "radius"), [((3000, 2250), (900, 1500), 300), ((2000, 2667), (1400, 700), 260)]
)
def test_find_disc_finds_a_small_coin_in_a_large_frame(size, centre, radius):
    disc = second_look.find_disc(_table_with_coin(size, centre, radius))
    assert disc is not None
    cx, cy, r = disc
    assert abs(cx - centre[0]) < 0.15 * radius and abs(cy - centre[1]) < 0.15 * radius
    assert abs(r - radius) < 0.2 * radius


def test_a_coin_that_fills_its_photo_is_not_cropped():
    front, _back = synthetic.generate_coin_jpegs(1900, 0, size=512)
    config = seed_regression(head="reader", image_size=192)
    view, cropped = second_look.framed_view(front, config)
    assert not cropped and tuple(view.shape) == (3, 192, 192)


def test_a_small_coin_in_a_large_frame_is_cropped_at_the_readers_resolution(base_reader):
    front, back = synthetic.generate_coin_jpegs(1900, 1, size=256)
    frames = []
    for data in (front, back):
        coin = Image.open(io.BytesIO(data)).convert("RGB").resize((700, 700), Image.BICUBIC)
        frame = _table_with_coin((3200, 2400), (1000, 1400), 10).copy()
        mask = Image.new("L", coin.size, 0)  # the coin's own background fades into the table, as in a photo
        ImageDraw.Draw(mask).ellipse([40, 40, 660, 660], fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(30))
        frame.paste(coin, (1000 - 350, 1400 - 350), mask)
        frames.append(_jpeg(frame, 88))
    view, cropped = second_look.framed_view(frames[0], base_reader.config)
    assert cropped and tuple(view.shape) == (3, 192, 192)
    looked = base_reader.read_bytes([(frames[0], frames[1])], CALIBRATION)
    assert round(float(looked.rows[0, 0])) == 1900
    assert "cropped" in looked.notes[0]


def test_onnx_and_torch_backends_take_the_same_second_look(base_reader, tmp_path):
    from training.ml.ensemble import export_onnx

    path = export_onnx(base_reader.ensemble, tmp_path / "reader.onnx")
    on_onnx = EnsemblePredictor.from_onnx(path, base_reader.config, threads=1)
    assert on_onnx.backend == "onnxruntime"
    front, back = synthetic.generate_coin_jpegs(1850, 2, size=256)
    turned = [(_turned(front, 270), back)]
    by_torch = base_reader.read_bytes(turned, CALIBRATION)
    by_onnx = on_onnx.read_bytes(turned, CALIBRATION)
    assert by_onnx.notes == by_torch.notes and by_torch.notes[0] is not None
    assert round(float(by_onnx.rows[0, 0])) == round(float(by_torch.rows[0, 0])) == 1850
