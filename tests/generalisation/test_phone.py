"""Phone degradations: EXIF tags written or not, frame sizes, the coin's share of the frame, finger and paint."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from tests.generalisation import phone, renderer


def _flat_coin(size: int = 256, disc: phone.Disc = (120.0, 136.0, 80.0)) -> Image.Image:
    """A plain red disc on grey: its pixels are easy to count after any degradation."""
    image = Image.new("RGB", (size, size), (128, 128, 128))
    cx, cy, r = disc
    ImageDraw.Draw(image).ellipse([cx - r, cy - r, cx + r, cy + r], fill=(220, 30, 30))
    return image


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def _diff(a: Image.Image, b: Image.Image) -> float:
    return float(
        np.abs(np.asarray(a.convert("RGB"), dtype=np.int16) - np.asarray(b.convert("RGB"), dtype=np.int16)).mean()
    )


@pytest.fixture(scope="module")
def coin() -> renderer.CoinPair:
    return renderer.render_pair(17, size=256)


def test_turned_with_exif_writes_the_tag_that_turns_the_photo_back_upright(coin):
    for seed in range(3):
        out = phone.degrade(coin.front, "turned_exif", seed)
        image = _open(out.data)
        assert image.getexif().get(phone.ORIENTATION_TAG) == out.exif_orientation in (3, 6, 8)
        upright, as_stored = _diff(ImageOps.exif_transpose(image), coin.front), _diff(image, coin.front)
        assert upright < 8 and upright < as_stored / 2  # JPEG's loss only, against the turn's


def test_turned_without_exif_has_no_tag_and_shows_the_coin_turned(coin):
    out = phone.degrade(coin.front, "turned_no_exif", 1)
    image = _open(out.data)
    assert out.exif_orientation is None and phone.ORIENTATION_TAG not in image.getexif()
    turned = min(_diff(image, coin.front.rotate(turn)) for turn in (90, 180, 270))
    assert turned < 8 and turned < _diff(image, coin.front) / 2


def test_turned_by_any_angle_keeps_the_size_and_has_no_tag(coin):
    out = phone.degrade(coin.front, "turned_any", 2)
    assert out.size == coin.front.size and phone.ORIENTATION_TAG not in _open(out.data).getexif()
    assert _diff(_open(out.data), coin.front) > 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_in_frame_is_a_big_photo_with_the_coin_covering_5_to_10_percent(seed):
    disc = (120.0, 136.0, 80.0)
    out = phone.degrade(_flat_coin(disc=disc), "small_in_frame", seed, disc=disc)
    image = np.asarray(_open(out.data).convert("RGB"), dtype=np.int16)
    assert 2000 <= max(out.size) <= 4000 and (image.shape[1], image.shape[0]) == out.size
    red = (image[..., 0] > 170) & (image[..., 1] < 90) & (image[..., 2] < 90)
    assert 0.05 <= out.coin_share <= 0.10
    assert 0.045 <= red.mean() <= 0.105  # counted, not just stated


def test_find_disc_finds_the_renderers_coin_within_a_tenth_of_its_radius():
    for seed in range(4):
        pair = renderer.render_pair(seed + 40, size=256, max_tilt=15)
        cx, cy, r = pair.discs[0]
        fx, fy, fr = phone.find_disc(pair.front)
        assert np.hypot(fx - cx, fy - cy) < 0.1 * r and abs(fr - r) < 0.1 * r


def test_finger_covers_part_of_the_rim_but_not_the_centre():
    disc = (128.0, 128.0, 90.0)
    image = _flat_coin(disc=disc)
    out = _open(phone.degrade(image, "finger", 3, disc=disc).data).convert("RGB")
    changed = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(image, dtype=np.int16)).sum(2) > 60
    yy, xx = np.mgrid[0:256, 0:256]
    rr = np.hypot(xx - 128, yy - 128)
    assert changed[(rr > 80) & (rr < 90)].mean() > 0.05
    assert not changed[rr < 40].any()


def test_glare_and_motion_blur_and_strong_jpeg_change_the_photo(coin):
    clean = coin.jpegs(90)[0]
    for kind in ("glare", "motion_blur", "jpeg_strong"):
        out = phone.degrade(coin.front, kind, 4, disc=coin.discs[0])
        assert out.size == coin.front.size and _diff(_open(out.data), coin.front) > 1.5, kind
    assert len(phone.degrade(coin.front, "jpeg_strong", 4).data) < len(clean) / 2


def test_painted_over_paints_around_the_date_only():
    image = _flat_coin(disc=(128.0, 128.0, 100.0))
    out = _open(phone.degrade(image, "painted_over", 5, date_centre=(128.0, 180.0), paint_radius=30).data)
    unpainted = _open(phone.degrade(image, "painted_over", 5).data)  # without a date: only JPEG's own changes
    changed = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(unpainted, dtype=np.int16)).sum(2) > 60
    yy, xx = np.mgrid[0:256, 0:256]
    near = np.hypot(xx - 128, yy - 180)
    assert changed[near < 25].mean() > 0.95 and not changed[near > 60].any()


def test_demo_phone_pairs_take_each_kind_in_turn_deterministically():
    pairs = list(phone.demo_phone_pairs(len(phone.KINDS), seed=3))
    assert [p.kind for p in pairs] == list(phone.KINDS)
    assert [p.readable for p in pairs] == [k != "painted_over" for k in phone.KINDS]
    again = next(phone.demo_phone_pairs(1, seed=3))
    assert (again.front, again.back, again.year) == (pairs[0].front, pairs[0].back, pairs[0].year)


def test_unknown_kind_is_refused(coin):
    with pytest.raises(ValueError, match="kind"):
        phone.degrade(coin.front, "sepia", 0)
