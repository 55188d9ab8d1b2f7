"""Photo validation (one error class per problem), EXIF orientation, HEIF, and the single preprocessing path."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from training.ml import images
from training.ml.config import seed_regression


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def photo(width: int = 96, height: int = 96, seed: int = 0) -> Image.Image:
    """A noisy colour gradient: incompressible enough that JPEG truncation is detectable."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, np.full_like(x, 128)], -1)
    return Image.fromarray((base + rng.normal(0, 20, base.shape)).clip(0, 255).astype(np.uint8))


def png_with_header_size(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims width x height (a decompression bomb's header, without the bomb)."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


# --- each problem has its own error ----------------------------------------------------------------------------------


def test_zero_bytes_is_empty_image_error():
    with pytest.raises(images.EmptyImageError) as info:
        images.validate_image_bytes(b"")
    assert info.value.code == "empty" and info.value.http_status == 400
    assert "empty" in str(info.value)


def test_truncated_jpeg_is_truncated_error():
    data = encode(photo(256, 256), quality=95)
    with pytest.raises(images.TruncatedImageError) as info:
        images.validate_image_bytes(data[: len(data) // 2])
    assert info.value.code == "truncated" and "truncated" in str(info.value)


def test_gif_is_unsupported_format():
    with pytest.raises(images.UnsupportedFormatError) as info:
        images.load_image(encode(photo(32, 32), "GIF"))
    assert info.value.code == "unsupported_format" and info.value.http_status == 415
    assert "GIF" in str(info.value)


def test_text_is_not_an_image():
    with pytest.raises(images.NotAnImageError) as info:
        images.validate_image_bytes(b"Hello, this is a letter about my coin collection.\n" * 20)
    assert info.value.code == "not_an_image" and "not an image" in str(info.value)


def test_header_over_pixel_limit_is_refused_before_decoding():
    # 20000 x 20000 = 400 MP claimed by a 70-byte file: refused from the header, nothing is decoded
    with pytest.raises(images.TooManyPixelsError) as info:
        images.validate_image_bytes(png_with_header_size(20_000, 20_000))
    assert info.value.code == "too_many_pixels" and info.value.http_status == 413


def test_pixel_limit_is_configurable():
    data = encode(photo(100, 100))
    with pytest.raises(images.TooManyPixelsError, match="10,000 pixels"):
        images.validate_image_bytes(data, max_pixels=5_000)
    assert images.validate_image_bytes(data, max_pixels=10_000) == "JPEG"


def test_between_our_limit_and_pillows_bomb_limit_is_too_many_pixels():
    with pytest.raises(images.TooManyPixelsError):
        images.validate_image_bytes(png_with_header_size(9_000, 9_000))  # 81 MP > 50 MP, < Pillow's error limit


def test_over_byte_limit_is_too_large():
    data = encode(photo(64, 64))
    with pytest.raises(images.ImageTooLargeError) as info:
        images.validate_image_bytes(data, max_bytes=len(data) - 1)
    assert info.value.code == "too_large" and info.value.http_status == 413


@pytest.mark.parametrize("text", ["not base64 at all!", "QUJD*RA==", "Q"])
def test_bad_base64_is_invalid_base64(text):
    with pytest.raises(images.InvalidBase64Error) as info:
        images.decode_base64(text)
    assert info.value.code == "invalid_base64"


def test_base64_variants_decode():
    data = encode(photo(32, 32))
    text = base64.b64encode(data).decode()
    assert images.decode_base64(text) == data
    assert images.decode_base64("data:image/jpeg;base64," + text) == data
    assert images.decode_base64(text.rstrip("=")) == data
    assert images.decode_base64("\n".join(text[i : i + 76] for i in range(0, len(text), 76))) == data
    assert images.decode_base64(base64.urlsafe_b64encode(data).decode()) == data


@pytest.mark.parametrize(
    "text",
    ["QUJD", "QUI=", "QQ==", "QQ==QQ==", "QQ=", "QUJD====", "=QUJD", "QUJD\n", " QUJD", "QU JD", "QR==", "QUJ\u00e9",
     "QUJD\x00", "-_-_", "QUJDRA"],
)
def test_fast_base64_path_accepts_exactly_what_the_lenient_path_accepts(text):
    """The SIMD fast path must never accept a text that the standard-library path refuses, nor decode it otherwise."""

    def outcome(decode):
        try:
            return decode()
        except images.ImageError as error:
            return error.code

    lenient = outcome(lambda: images._decode_lenient_base64(text, encoded_limit=10_000, max_bytes=10_000))
    assert outcome(lambda: images.decode_base64(text)) == lenient
    fast = images._decode_canonical_base64(text)
    assert fast is None or fast == lenient


def test_large_base64_round_trips_through_the_fast_path():
    data = bytes(range(256)) * 20_000
    text = base64.b64encode(data).decode()
    assert images._decode_canonical_base64(text) == data
    assert images.decode_base64(text, max_bytes=len(data)) == data


def test_base64_over_limit_is_refused_before_decoding():
    with pytest.raises(images.ImageTooLargeError):
        images.decode_base64("A" * 2_000, max_bytes=1_000)


def test_empty_base64_is_empty_image():
    with pytest.raises(images.EmptyImageError):
        images.decode_base64("")


def test_error_field_can_be_set_by_the_caller():
    error = images.NotAnImageError("the file is not an image")
    error.field = "front_image"
    assert error.field == "front_image" and str(error) == "the file is not an image"
    assert isinstance(error, ValueError)


def test_preprocess_batch_error_names_the_side():
    config = seed_regression(image_size=32)
    good = encode(photo(40, 40))
    with pytest.raises(images.NotAnImageError) as info:
        images.preprocess_batch([(good, good), (good, b"plain text, not a photo" * 4)], config)
    assert info.value.field == "inputs[1].back_image"
    assert "back photo" in str(info.value)


# --- decoding ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_supported_formats_decode_to_the_configured_size(fmt):
    data = encode(photo(120, 80), fmt)
    image = images.load_image(data, size=64)
    assert image.size == (64, 64) and image.mode == "RGB"
    assert images.validate_image_bytes(data) == fmt


def test_heif_photo_decodes():
    import pillow_heif  # a requirement: HEIC photos from phones must decode, so its absence fails here

    assert pillow_heif is not None
    data = encode(photo(64, 48), "HEIF", quality=90)
    assert images.validate_image_bytes(data) == "HEIF"
    image = images.load_image(data, size=32)
    assert image.size == (32, 32) and image.mode == "RGB"


def test_grayscale_config_gives_single_channel():
    image = images.load_image(encode(photo(64, 64)), size=32, grayscale=True)
    assert image.mode == "L"
    tensor = images.build_transforms(seed_regression(image_size=32, grayscale=True), train=False)(image)
    assert tensor.shape == (1, 32, 32)


def test_exif_orientation_is_applied():
    # given a photo stored sideways: red on top, blue below, with EXIF orientation 6 ("rotate 90° clockwise")
    stored = Image.new("RGB", (64, 64), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 64, 32))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, exif=exif.tobytes(), quality=95)
    # when it is loaded
    image = np.asarray(images.load_image(data, size=32)).astype(int)
    # then it is shown upright: the stored top row is now the right-hand column
    assert image[16, 28, 0] > 200 and image[16, 28, 2] < 60  # right side red
    assert image[16, 3, 2] > 200 and image[16, 3, 0] < 60  # left side blue


def test_big_jpeg_is_decoded_at_reduced_scale():
    data = encode(photo(2048, 1536), quality=85)
    opened = images._open_checked(
        data, max_bytes=images.MAX_UPLOAD_BYTES, max_pixels=images.MAX_IMAGE_PIXELS, target=256
    )
    assert opened.size == (512, 384)  # libjpeg decoded at 1/4 scale, never below twice the target
    assert images.load_image(data, size=128).size == (128, 128)


def test_non_square_photo_is_centre_cropped_not_squashed():
    # a wide photo with a black centre square and white sides: the crop keeps only the centre
    wide = Image.new("RGB", (300, 100), (255, 255, 255))
    wide.paste((0, 0, 0), (100, 0, 200, 100))
    image = np.asarray(images.load_image(encode(wide, "PNG"), size=32))
    assert image.max() < 40


# --- transforms ----------------------------------------------------------------------------------------------------


def test_train_transform_is_the_eval_transform_plus_augmentation_without_flips():
    config = seed_regression(image_size=32)
    evaluation = images.build_transforms(config, train=False)
    training = images.build_transforms(config, train=True)
    names = [type(step).__name__ + getattr(step, "__name__", "") for step in training.steps]
    assert not any("flip" in name.lower() for name in names)
    extra = [step for step in training.steps if type(step) not in {type(s) for s in evaluation.steps}]
    assert len(extra) == 1 and isinstance(extra[0], images.Augment)
    # every sampled geometric transform keeps orientation (positive determinant): no mirror image ever
    matrices = extra[0].sample_matrices(10_000)
    assert bool((torch.linalg.det(matrices[:, :, :2]) > 0).all())


def test_augmentation_keeps_a_readable_asymmetric_coin_unmirrored():
    # the left half bright, right half dark: after augmentation the left stays brighter than the right
    config = seed_regression(image_size=32)
    tensor = torch.zeros(64, 3, 32, 32, dtype=torch.uint8)
    tensor[:, :, :, :16] = 220
    out = images.build_transforms(config, train=True).batch(tensor)
    assert bool((out[:, :, :, :12].mean((1, 2, 3)) > out[:, :, :, 20:].mean((1, 2, 3))).all())


def test_augment_off_in_config_means_no_augmentation():
    config = seed_regression(image_size=32, augment=False)
    assert not any(isinstance(s, images.Augment) for s in images.build_transforms(config, train=True).steps)


def test_eval_transform_is_deterministic_and_shared_by_serving():
    config = seed_regression(image_size=32)
    data = encode(photo(80, 80))
    transform = images.build_transforms(config, train=False)
    direct = transform(images.load_image(data, size=32))
    front, back = images.preprocess_pair(data, data, config)
    assert torch.equal(direct, front) and torch.equal(front, back)
    assert front.dtype == torch.float32 and front.shape == (3, 32, 32)
    # normalised: roughly zero-centred, unit-scaled values
    assert -3 < float(front.min()) and float(front.max()) < 3


def test_transform_accepts_a_raw_pil_photo_of_any_size():
    config = seed_regression(image_size=32)
    out = images.build_transforms(config, train=False)(photo(120, 90))
    assert out.shape == (3, 32, 32)


def test_train_transform_changes_the_image_but_not_its_shape():
    config = seed_regression(image_size=32)
    image = images.load_image(encode(photo(64, 64)), size=32)
    torch.manual_seed(0)
    augmented = images.build_transforms(config, train=True)(image)
    plain = images.build_transforms(config, train=False)(image)
    assert augmented.shape == plain.shape and not torch.equal(augmented, plain)
