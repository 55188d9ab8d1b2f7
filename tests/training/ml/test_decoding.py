"""Bounded decode: every photo is priced from its header and refused over budget (scan bombs, pixel floods), a decode
that outruns its estimate is stopped by the CPU clock, and broken EXIF never escapes as anything but an ImageError."""

from __future__ import annotations

import io
import random
import time

import numpy as np
import pytest
from PIL import Image

from training.ml import decoding, images


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def flat(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), (120, 110, 90))


def scan_bomb(width: int, height: int, repeats: int) -> bytes:
    """A progressive JPEG whose last scan is repeated: 50 KB that cost 4.9 s of CPU at 2000x2000 here."""
    data = encode(flat(width, height), quality=90, progressive=True)
    last, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:end] + data[last:end] * repeats + data[end:]


def cpu_of(call) -> tuple[float, object]:
    started = time.thread_time()
    try:
        outcome = call()
    except images.ImageError as error:
        outcome = error
    return time.thread_time() - started, outcome


def test_a_scan_bomb_is_refused_from_its_header_naming_the_scans():
    data = scan_bomb(2000, 2000, 2000)
    assert len(data) < 60_000

    spent, outcome = cpu_of(lambda: images.load_image(data, size=192))

    assert isinstance(outcome, images.DecodeTooCostlyError) and outcome.http_status == 413
    assert "progressive JPEG with 2,010 scans" in str(outcome) and "baseline JPEG" in str(outcome)
    assert spent < 0.1


def test_a_decode_that_outruns_its_estimate_is_stopped_by_the_cpu_clock(monkeypatch):
    # given an estimate that ignores scans (as if the price list were wrong)
    monkeypatch.setattr(decoding, "NS_PER_PIXEL_PER_SCAN", 0.0)
    data = scan_bomb(2000, 2000, 2000)

    spent, outcome = cpu_of(lambda: images.load_image(data, size=192))

    assert isinstance(outcome, images.DecodeTooCostlyError), outcome
    assert "was stopped" in str(outcome)
    assert spent < 1.0  # the budget is 0.8 s; unbounded, this photo costs about 4.9 s here


@pytest.mark.parametrize(
    ("fmt", "mode", "params"),
    [("PNG", "RGB", {}), ("PNG", "I;16", {}), ("WEBP", "RGB", {"quality": 80}), ("HEIF", "RGB", {"quality": 80})],
)
def test_a_pixel_flood_is_refused_before_any_pixel_is_decoded(fmt, mode, params):
    data = encode(flat(7000, 7000).convert(mode), fmt, **params)

    spent, outcome = cpu_of(lambda: images.load_image(data, size=192))

    assert isinstance(outcome, images.DecodeTooCostlyError), outcome
    assert "7000x7000" in str(outcome)
    assert spent < 0.1


def test_pixels_over_the_limit_are_named_in_megapixels_in_our_words():
    data = encode(Image.new("L", (16000, 16000)), "PNG")

    with pytest.raises(images.TooManyPixelsError) as info:
        images.validate_image_bytes(data)

    assert str(info.value) == (
        "the image is 16,000x16,000 = 256.0 megapixels, more than the limit of 50.0 megapixels; send a smaller photo"
    )


def test_ordinary_photos_pass_well_inside_the_budget():
    rng = np.random.default_rng(0)
    noisy = Image.fromarray((rng.random((188, 251, 3)) * 255).astype(np.uint8)).resize((4000, 3000))
    for fmt, params in (("JPEG", {"quality": 90}), ("JPEG", {"quality": 90, "progressive": True}), ("PNG", {})):
        data = encode(noisy, fmt, **params)
        spent, outcome = cpu_of(lambda data=data: images.load_image(data, size=192, max_bytes=32 * 1024 * 1024))
        assert isinstance(outcome, Image.Image), (fmt, params, outcome)
        assert spent < 0.8, (fmt, params, spent)


def test_model_input_is_the_same_whether_the_photo_is_turned_before_or_after_the_reduce():
    rng = np.random.default_rng(1)
    stored = Image.fromarray((rng.random((60, 80, 3)) * 255).astype(np.uint8)).resize((800, 600))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "PNG", exif=exif.tobytes())

    served = np.asarray(images.load_image(data, size=64)).astype(int)
    upright = stored.transpose(Image.Transpose.ROTATE_270)
    expected = np.asarray(decoding.finish(upright, size=64, grayscale=False, orientation=1)).astype(int)

    assert np.abs(served - expected).mean() < 2.0


def coin_photo(size: int) -> bytes:
    """A generated coin photo (training.ml.synthetic) as a size x size JPEG, as a phone app uploads it."""
    from training.ml.synthetic import iter_coins  # the generator is slow to import; only these tests use it

    front, _back, _year = next(iter(iter_coins(1, seed=3, size=512)))
    return encode(Image.open(io.BytesIO(front)).convert("RGB").resize((size, size), Image.Resampling.BICUBIC))


def psnr(a: Image.Image, b: Image.Image) -> float:
    difference = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(10 * np.log10(255**2 / (difference**2).mean()))


def test_a_rendition_leaves_the_decoded_photo_and_the_model_input_as_they_were():
    # given a 600 px photo decoded whole for a 192 px model (no box reduction happens before the thumbnail)
    photo = decoding.decode(coin_photo(600), target=384)
    model_input = np.asarray(photo.model_image(size=192, grayscale=False))

    # when its thumbnail is made
    photo.rendition_jpeg(320)

    # then the decoded photo was not resized in place: the model input made after it is the same
    assert photo.image.size == (600, 600)
    assert np.array_equal(np.asarray(photo.model_image(size=192, grayscale=False)), model_input)


def test_a_thumbnail_looks_like_a_lanczos_one_within_what_its_jpeg_loses():
    # A 600 px photo's thumbnail is its box reduction by 2, 300 px (0.2 ms a photo; the Hamming resize to 320 px
    # cost 2.0 ms): against a Lanczos resize of the upload to the same size its JPEG scores 42.5 dB PSNR (the 320 px
    # Hamming one scored 42.2 dB, a Lanczos thumbnail JPEG 43.9 dB)
    data = coin_photo(600)
    photo = decoding.decode(data, target=384)

    thumbnail = Image.open(io.BytesIO(photo.rendition_jpeg(320))).convert("RGB")

    assert thumbnail.size == (300, 300)
    reference = Image.open(io.BytesIO(data)).convert("RGB").resize(thumbnail.size, Image.Resampling.LANCZOS)
    assert psnr(thumbnail, reference) > 40.0


@pytest.mark.parametrize(("size", "expected"), [(600, 300), (640, 320), (700, 320), (1200, 300)])
def test_a_thumbnail_is_at_most_its_size_and_never_far_under_it(size, expected):
    # a whole reduction is the whole resize only when it lands within NEAR_RENDITION under the size: 700 px / 3 would
    # be 233 px, so 700 px is reduced by 2 and resampled to 320 px
    photo = decoding.decode(coin_photo(size), target=384)

    thumbnail = Image.open(io.BytesIO(photo.rendition_jpeg(320)))

    assert max(thumbnail.size) == expected
    assert decoding.NEAR_RENDITION * 320 <= max(thumbnail.size) <= 320


def test_malformed_exif_never_raises_anything_but_an_image_error():
    # 2,000 JPEGs whose EXIF block has random bytes changed: each decodes, or is refused with a named ImageError
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Camera"
    exif[0x8769] = {0x9003: "2024:01:01 00:00:00"}
    good = encode(Image.new("RGB", (64, 48), (200, 40, 40)), exif=exif.tobytes())
    start = good.index(b"Exif\x00\x00")
    length = int.from_bytes(good[start - 2 : start], "big") - 2
    generator = random.Random(4)
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(2000):
        data = bytearray(good)
        for _ in range(generator.randint(1, 8)):
            data[start + 6 + generator.randrange(length - 6)] = generator.randrange(256)
        try:
            photo = decoding.decode(bytes(data), target=64)
            photo.model_image(size=32, grayscale=False)
            photo.rendition_jpeg(64)
            outcomes["ok"] += 1
        except images.ImageError:
            outcomes["refused"] += 1
    assert outcomes["ok"] + outcomes["refused"] == 2000 and outcomes["ok"] > 1000, outcomes


def test_a_photo_three_times_the_model_size_is_box_reduced_to_between_one_and_two_times_it_first():
    # given a 600 px photo for a 192 px model (a 3.1x resize: Pillow's bilinear costs in proportion to that span)
    rng = np.random.default_rng(4)
    photo = Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).resize((600, 600))

    # when it is finished for the model
    finished = decoding.finish(photo, size=192, grayscale=False, orientation=1)

    # then it is the 600 px square box-reduced by 3 (to 200 px) and only then resized by 4 %
    expected = photo.reduce(3).resize((192, 192), Image.Resampling.BILINEAR)
    assert np.array_equal(np.asarray(finished), np.asarray(expected))


def test_a_photo_under_three_times_the_model_size_is_resized_as_versions_were_trained():
    # given a 256 px generated-size photo for a 128 px model (the seed's regression head)
    rng = np.random.default_rng(5)
    photo = Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).resize((256, 256))

    # when it is finished, then it is one bilinear resize, as before the box reduction changed
    finished = decoding.finish(photo, size=128, grayscale=False, orientation=1)
    assert np.array_equal(np.asarray(finished), np.asarray(photo.resize((128, 128), Image.Resampling.BILINEAR)))
