"""Photo decoding at bounded cost: every photo is checked from its header, priced, then decoded once at reduced scale.

Why a price: decoding cost is not bounded by file size. Measured on the 2-core development machine:
- a 52 KB progressive JPEG whose last scan is repeated 2,000 times (a "scan bomb") cost 4.9 s of CPU at 2000x2000 and
  66 s at 7000x7000: each scan costs about 0.67 ns per full-resolution pixel, even when decoded at 1/8 scale;
- a 156 KB 7000x7000 PNG (a "pixel flood") cost 0.49 s, an 85 KB WebP 1.56 s, and each holds 196 MB while decoded
  (Pillow keeps RGB as 4 bytes per pixel), since only JPEG can be decoded at reduced scale (libjpeg's ``draft``).
So before any pixel is decoded, ``decode_plan()`` estimates the CPU seconds (pixels x the format's measured cost,
progressive JPEG scans counted from their markers) and the memory, and refuses a photo over the budget with a 413
that names the problem. While decoding, the stream checks the thread's CPU clock at every read: a photo that gets
past the estimate is still stopped soon after its budget runs out, wherever the decoder reads its input in pieces.

Coefficients are per full-resolution pixel, the worse of a flat and a noisy photo measured here, plus 25 %:
JPEG 4 ns (+0.85 ns per scan), PNG 28, WebP 40, HEIF 12, AVIF 10, TIFF 15, BMP 5. With the default budget of 0.8 s
a 12 MP phone photo costs 0.03 s (JPEG) to 0.34 s (PNG).

The price counts everything the header declares: every scan of any JPEG (a *baseline* JPEG may carry thousands of
header-only scans too: 7000x7000 with 5,000 of them cost 38 s of CPU when priced as one), every conversion the
thumbnail and the model need at full size (a palette or 16-bit photo is converted to RGB before it is reduced: a
407 KB 7000x7000 palette BMP peaked at 235 MB), and the decoder's own copies (a lossless WebP is held three times:
libwebp's canvas, the frame it hands over and Pillow's image, and it was opened twice; 828 B of 4470x4470 peaked
at 310 MB).

Only the decoders that read their input in pieces (JPEG, PNG, BMP) can be stopped by the CPU clock between reads;
WebP, TIFF, HEIF and AVIF decode a whole picture in one call, and libwebp even allocates the canvas when the file is
opened. Those are opened, priced and decoded in a helper process with a hard CPU timer and a hard memory limit
(training.ml.decode_sandbox), which hands back the picture already reduced near the caller's target. Measured here:
a 12 MP JPEG decodes in process at 1/8 scale in about 30 ms; the same photo as a WebP costs about the same decode
time in the helper plus 2-4 ms of transfer, and the helper's start (about 0.15 s of CPU) is paid once per process.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from training.ml import decode_sandbox
from training.ml.photo_errors import (
    DecodeTooCostlyError,
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
    TooManyPixelsError,
    TruncatedImageError,
    UnsupportedFormatError,
    human_bytes,
)

try:  # HEIC/HEIF phone photos; the package is in requirements, but decoding JPEG/PNG must not depend on it
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover
    pillow_heif = None

from training.ml.photo_limits import DECODE_BUDGET_SECONDS as DECODE_BUDGET_SECONDS
from training.ml.photo_limits import DECODE_MEMORY_BYTES as DECODE_MEMORY_BYTES
from training.ml.photo_limits import MAX_IMAGE_PIXELS as MAX_IMAGE_PIXELS
from training.ml.photo_limits import MAX_UPLOAD_BYTES as MAX_UPLOAD_BYTES
from training.ml.photo_limits import PhotoLimits, resolve

# A rendition (thumbnail) may come out this much under its max_px when a whole box reduction gets it there (one
# tenth of the resize's cost; rendition_jpeg).
NEAR_RENDITION = 0.85
# Pillow's names. MPO is how Pillow names the multi-picture JPEGs many phones write.
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "HEIF", "AVIF", "BMP", "TIFF"})
JPEG_FORMATS = frozenset({"JPEG", "MPO"})
# Decoded in this process, in pieces the CPU clock can stop; the others only in the helper process.
IN_PROCESS_FORMATS = ("JPEG", "PNG", "BMP")  # Pillow opens MPO through its JPEG plugin
# Copies of the full picture a decoder holds at its peak beyond Pillow's image (peak RSS growth over the image's size,
# measured on 12 MP: WebP 2.0x, HEIF 1.75x, AVIF 1.9x, TIFF 1.0x; plus a margin for libwebp's canvas).
DECODER_COPIES = {"WEBP": 1.5, "TIFF": 1.0, "HEIF": 1.0, "AVIF": 1.0}
# Extra bytes per decoded pixel for the full-size conversion before reduction (palette/bilevel -> RGB(A), 16-bit ->
# 32-bit -> 8-bit), and its CPU cost.
CONVERSION_BYTES = {"P": 4, "PA": 4, "1": 1, "I;16": 9, "I;16B": 9, "I;16L": 9, "I;16N": 9}
NS_PER_CONVERTED_PIXEL = 3.0
NS_PER_PIXEL_BMP_RLE = 14.0  # measured 11.4 ns on a grey 7000x7000 RLE8 file (0.56 s), plus 25 %
NS_PER_PIXEL = {
    "JPEG": 4.0,
    "MPO": 4.0,
    "PNG": 28.0,
    "WEBP": 40.0,
    "HEIF": 12.0,
    "AVIF": 10.0,
    "TIFF": 15.0,
    "BMP": 5.0,
}
NS_PER_PIXEL_PER_SCAN = 0.85
# Bytes per pixel Pillow holds for each mode ("RGB" is stored as 4 bytes per pixel).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
_SOS = b"\xff\xda"
_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Our own pixel limit is checked from the header, in our words, before any pixel is decoded; Pillow's guard would
# answer first, with its own text ("could be decompression bomb DOS attack").
Image.MAX_IMAGE_PIXELS = None
# Never decode partial files: a truncated upload must be an error, not a grey half-coin.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class DecodePlan:
    """What decoding a photo will cost, from its header alone."""

    format: str
    width: int
    height: int
    scans: int
    seconds: float
    memory_bytes: int
    progressive: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass
class DecodedPhoto:
    """A photo decoded once, at reduced scale where its format allows, not yet turned upright.

    Everything a request needs comes from it: the model's input (``model_image``) and the small JPEG renditions
    (``rendition_jpeg``), so no request decodes a photo twice.
    """

    image: Image.Image
    format: str
    orientation: int

    def model_image(self, *, size: int, grayscale: bool) -> Image.Image:
        return finish(self.image, size=size, grayscale=grayscale, orientation=self.orientation)

    def rendition_jpeg(self, max_px: int, *, quality: int = 82, optimize: bool = True) -> bytes:
        """The whole photo, upright, no larger than max_px on its longer side (and at least NEAR_RENDITION of it), as
        a JPEG; ``optimize``: Huffman tables fitted to the photo (5 % smaller, an extra pass).

        When a whole box reduction lands within NEAR_RENDITION under max_px, it is the whole resize: a 600 px upload
        is decoded whole (the model wants 384 px), and its thumbnail is then 300 px, box-reduced by 2 in 0.2 ms,
        where the Hamming resize to 320 px cost 2.0 ms per photo (POST /api/predict makes two). Otherwise the photo is
        box-reduced by the whole factor that stays above max_px and resampled with Hamming, not Lanczos (Lanczos 4.0
        ms per photo, Hamming 1.8 ms; they differ by 48.5 dB PSNR on generated coins, far less than the JPEG at
        quality 82 then loses, 38.8 dB). Never resizes the decoded image in place: the model's input comes from it.
        """
        image = self.image
        longest = max(image.size)
        whole = -(-longest // max_px)  # the smallest whole reduction that fits max_px
        factor = whole if longest // whole >= NEAR_RENDITION * max_px else longest // max_px
        if factor >= 2:
            image = reduce_box(image, factor, (0, 0, *image.size))
        image = _to_mode(transpose(image, self.orientation), "RGB")
        if image is self.image:  # thumbnail() resizes in place
            image = image.copy()
        image.thumbnail((max_px, max_px), Image.Resampling.HAMMING)  # a no-op when the reduction made it fit
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality, optimize=optimize)
        return buffer.getvalue()


class _BudgetedStream(io.BytesIO):
    """The photo's bytes, read by the decoder in pieces; reads check the thread's CPU clock.

    Every read of 256 bytes or more and every 32nd small one: the RLE BMP decoder reads two bytes at a time (200,000 reads for a
    400 KB file), and the clock is a system call of about 0.5 us."""

    deadline: float | None = None
    _reads = 0

    def read(self, size: int | None = -1) -> bytes:
        if self.deadline is not None:
            self._reads += 1
            if (size is None or size < 0 or size >= 256 or not self._reads % 32) and time.thread_time() > self.deadline:
                raise _OverBudget()
        return super().read(size)


class _OverBudget(Exception):
    pass


def decode_plan(data: bytes, *, target: int = 0, limits: PhotoLimits | None = None, **overrides: float) -> DecodePlan:
    """Check a photo from its header (bytes, format, dimensions, frames, structure) and price its decode; no pixel is
    decoded in this process.

    ``target`` is the smallest side the caller needs; JPEGs are priced at the reduced scale libjpeg will decode.
    ``limits`` (the library default when None; loose keyword overrides as before) bound it. Raises an ImageError
    naming the problem.
    """
    limits = resolve(limits, **overrides)
    _check_bytes(data, limits)
    if _sandboxed(data):
        return DecodePlan(**decode_sandbox.plan(bytes(data), target=target, limits=limits))
    return plan_here(bytes(data), open_header(data, IN_PROCESS_FORMATS), target=target, limits=limits)


def plan_here(data: bytes, image: Image.Image, *, target: int, limits: PhotoLimits) -> DecodePlan:
    """Check the opened header of ``data`` and price it; raises an ImageError over any limit."""
    _check_image(image, limits)
    plan = _price(data, image, target=target)
    if plan.seconds > limits.budget_seconds:
        raise DecodeTooCostlyError(_too_costly_message(plan, limits.budget_seconds))
    if plan.memory_bytes > limits.max_decode_bytes:
        raise DecodeTooCostlyError(memory_message(plan.format, plan.width, plan.height, plan.memory_bytes, limits))
    return plan


def memory_message(image_format: str, width: int, height: int, memory: int, limits: PhotoLimits) -> str:
    return (
        f"the image ({image_format}, {width}x{height}) would need {human_bytes(memory)} of memory to decode, more "
        f"than the limit of {human_bytes(limits.max_decode_bytes)}; send a JPEG or a smaller photo"
    )


def decode(data: bytes, *, target: int, limits: PhotoLimits | None = None, **overrides: float) -> DecodedPhoto:
    """Check, price and decode a photo once, near ``target`` pixels on its shorter side where the format allows.

    Decodes through the whole file, so truncation is caught. JPEG, PNG and BMP are decoded here in pieces the CPU
    clock stops; WebP, TIFF, HEIF and AVIF in the helper process under a hard CPU and memory limit, which returns
    them box-reduced near ``target``. Raises an ImageError naming the problem.
    """
    limits = resolve(limits, **overrides)
    _check_bytes(data, limits)
    if _sandboxed(data):
        image, format_name, orientation = decode_sandbox.decode(bytes(data), target=target, limits=limits)
        return DecodedPhoto(image=image, format=format_name, orientation=orientation)
    started = time.thread_time()
    data = bytes(data)
    plan = plan_here(data, open_header(data, IN_PROCESS_FORMATS), target=target, limits=limits)
    return _decode_priced(data, plan, target=target, limits=limits, started=started)


def _decode_priced(data: bytes, plan: DecodePlan, *, target: int, limits: PhotoLimits, started: float) -> DecodedPhoto:
    stream = _BudgetedStream(data)
    image = _open(stream)  # verify() in the header check leaves an image unusable: open again to decode
    if plan.format in JPEG_FORMATS:
        image.draft(None, (target, target))  # libjpeg decodes at 1/2, 1/4 or 1/8 scale, never below target
    # Hand the decoder a one-scan JPEG whole (Pillow feeds 64 KiB per call by default): it releases the GIL for each
    # call, and under load every re-acquisition can wait up to the 5 ms switch interval behind a thread parsing JSON
    # (measured: 73 ms per 12 MP decode in 64 KiB calls against 41 ms in one call). A JPEG of several scans
    # (progressive, or baseline with one scan per component), whose cost grows with its scans, is fed about a
    # quarter of a scan at a time (40 calls for an ordinary 10-scan photo), so the CPU clock is checked between
    # scans; PNG in 16 KiB pieces (deflate expands at most about 1000:1, so a piece is at most ~16 MB of pixels).
    if plan.format in JPEG_FORMATS and plan.scans == 1:
        image.decodermaxblock = max(len(data), image.decodermaxblock)
    elif plan.format in JPEG_FORMATS:
        image.decodermaxblock = min(64 * 1024, max(512, len(data) // (4 * plan.scans)))
    else:
        image.decodermaxblock = 16 * 1024
    stream.deadline = started + limits.budget_seconds
    try:
        image.load()
    except _OverBudget:
        raise DecodeTooCostlyError(stopped_message(plan.format, plan.width, plan.height, limits)) from None
    except Exception as error:
        raise decode_error(error) from error
    finally:
        stream.deadline = None
    return DecodedPhoto(image=image, format=plan.format, orientation=exif_orientation(image))


def stopped_message(image_format: str, width: int, height: int, limits: PhotoLimits) -> str:
    return (
        f"decoding the image ({image_format}, {width}x{height}) took more than {limits.budget_seconds:g} s of "
        "CPU time and was stopped; send it as a baseline JPEG"
    )


def _sandboxed(data: bytes) -> bool:
    """WebP (RIFF....WEBP), TIFF (II*, MM*, BigTIFF) and ISO media (....ftyp: HEIF, AVIF), from the magic bytes."""
    head = bytes(data[:12])
    return (
        (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
        or head[4:8] == b"ftyp"
    )


MIN_REDUCE_SCALE = 3  # finish() box-reduces photos at least this many times the model size


def finish(image: Image.Image, *, size: int, grayscale: bool, orientation: int | None = None) -> Image.Image:
    """Centre square, reduce, turn upright, convert and resize to ``size``: the part shared by every source.

    The square is cut and box-reduced in one step before anything else, so a large decoded photo is never copied
    (the order used to be transpose, convert, crop, reduce: three full-size copies, 600 MB for a 50 MP PNG). A
    centred square turns into the centred square, so turning it upright afterwards gives the same pixels.

    A photo at least three times ``size`` is box-reduced to between one and two times ``size`` (not two to four):
    Pillow's antialiased bilinear resize costs in proportion to the scale it spans, and a 600 px photo resized
    straight to 192 px took 1.9 ms of the 3.3 ms that preparing it cost; a box reduction by 3 and a 4 % resize do the
    same low-pass for a fraction of that. Smaller photos are resized as before: the generated training coins (256 px)
    for every model size above 85 px, and so every version trained before this change sees what it was trained on.
    """
    if orientation is None:
        orientation = exif_orientation(image)
    width, height = image.size
    side = min(width, height)
    factor = side // size if side >= MIN_REDUCE_SCALE * size else 1
    if factor >= 2:  # whole boxes only: a partial box at one edge would move with the photo's orientation
        side -= side % factor
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    if factor >= 2:
        image = reduce_box(image, factor, box)
    elif width != height:
        image = image.crop(box)
    image = _to_mode(transpose(image, orientation), "L" if grayscale else "RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return image


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1..8), 1 when missing or unreadable: a broken EXIF block must not break a good photo
    (malformed blocks made ImageOps.exif_transpose raise TypeError or struct.error)."""
    try:
        value = image.getexif().get(_ORIENTATION, 1)
        return int(value) if int(value) in _TRANSPOSE else 1
    except Exception:
        return 1


def transpose(image: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


def reduce_box(image: Image.Image, factor: int, box: tuple[int, int, int, int]) -> Image.Image:
    """Box-average ``box`` by ``factor``. Palette and 16-bit images are converted first (averaging palette indices
    would mix unrelated colours)."""
    if image.mode in ("P", "PA", "1") or image.mode.startswith("I;16"):
        image = _to_mode(image, "RGB" if image.mode != "1" else "L", keep_alpha=True)
    return image.reduce(factor, box=box)


def _to_mode(image: Image.Image, mode: str, *, keep_alpha: bool = False) -> Image.Image:
    """Convert to ``mode``; transparent areas become white (a cut-out coin on a white page), unless keep_alpha."""
    if image.mode == mode:
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        image = image.convert("RGBA")
        if keep_alpha:
            return image
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    elif image.mode.startswith("I;16") or image.mode == "I":
        image = image.point(lambda value: value * (1 / 256)).convert("L")
    return image.convert(mode)


def _price(data: bytes, image: Image.Image, *, target: int) -> DecodePlan:
    image_format = (image.format or "").upper()
    width, height = image.size
    pixels = width * height
    scans = 1
    decoded_pixels = pixels
    memory = pixels * _MODE_BYTES.get(image.mode, 4) * (1 + DECODER_COPIES.get(image_format, 0.0))
    seconds = pixels * NS_PER_PIXEL.get(image_format, 40.0) * 1e-9
    if image_format in JPEG_FORMATS:
        # Every JPEG, baseline too: a baseline file may hold one scan per component, or thousands of header-only
        # scans, and libjpeg then decodes each over the whole image. SOS markers cannot occur inside entropy-coded
        # data (0xFF is stuffed there), so this counts every scan (and those of an embedded thumbnail or an MPO's
        # second picture, which only makes the estimate a little stricter).
        scans = max(1, data.count(_SOS))
        scale = max(1, min(8, min(width, height) // max(target, 1)))
        decoded_pixels = pixels // (scale * scale)
        memory = decoded_pixels * 4
        if scans > 1:  # several scans: libjpeg keeps every coefficient of the full-size image until the last scan
            memory += int(pixels * _jpeg_samples_per_pixel(image) * 2)
        seconds += pixels * (scans - 1) * NS_PER_PIXEL_PER_SCAN * 1e-9
    if image_format == "BMP" and image.info.get("compression") in (1, 2):  # RLE: Pillow's decoder is Python code
        memory += pixels * _MODE_BYTES.get(image.mode, 4)  # that fills a bytearray of the whole image first
        seconds = pixels * NS_PER_PIXEL_BMP_RLE * 1e-9
    converted = CONVERSION_BYTES.get(image.mode, 0)  # the full-size conversion before reduce (see _reduce)
    if converted:
        memory += decoded_pixels * converted
        seconds += decoded_pixels * NS_PER_CONVERTED_PIXEL * 1e-9
    progressive = bool(image.info.get("progression") or image.info.get("progressive"))
    return DecodePlan(image_format, width, height, scans, seconds, int(memory), progressive)


def _jpeg_samples_per_pixel(image: Image.Image) -> float:
    """Samples per pixel over all components (3 for 4:4:4 colour, 1.5 for the usual 4:2:0, 1 for grey)."""
    layers = getattr(image, "layer", None) or []
    if not layers:
        return float(len(image.getbands()))
    max_h = max(layer[1] for layer in layers) or 1
    max_v = max(layer[2] for layer in layers) or 1
    return sum(layer[1] * layer[2] for layer in layers) / (max_h * max_v)


def _too_costly_message(plan: DecodePlan, budget_seconds: float) -> str:
    what = f"the image ({plan.format}, {plan.width}x{plan.height}"
    if plan.scans > 1:
        kind = "a progressive JPEG" if plan.progressive else "a baseline JPEG"
        return (
            f"{what}, {kind} with {plan.scans:,} scans) would take about {plan.seconds:.1f} s of CPU time "
            f"to decode, more than the limit of {budget_seconds:g} s; save it again as a baseline JPEG of one scan"
        )
    return (
        f"{what}) would take about {plan.seconds:.1f} s of CPU time to decode, more than the limit of "
        f"{budget_seconds:g} s; send a JPEG or a photo with fewer pixels"
    )


def _check_bytes(data: bytes, limits: PhotoLimits) -> None:
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise NotAnImageError(f"the image must be bytes, got {type(data).__name__}")
    if not data:
        raise EmptyImageError("the image is empty (zero bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(
            f"the image is {human_bytes(len(data))}, more than the limit of {human_bytes(limits.max_bytes)}"
        )


def open_header(data: bytes, formats: tuple[str, ...] | None) -> Image.Image:
    """Open the header with only ``formats``' plugins (None: all supported); a format outside them is named."""
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError:
        raise _unsupported(data) from None
    except Exception as error:
        raise decode_error(error) from error
    image.format = (image.format or "").upper()
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedFormatError(_unsupported_message(image.format or "unknown"))
    return image


def _unsupported(data: bytes) -> ImageError:
    """The error for a file none of our plugins opens: the format named where Pillow knows it (GIF, ICO, ...)."""
    try:
        with Image.open(io.BytesIO(data)) as other:
            name = (other.format or "").upper()
    except Exception:
        return NotAnImageError("the file is not an image (no known image format)")
    return UnsupportedFormatError(_unsupported_message(name or "unknown"))


def _unsupported_message(name: str) -> str:
    return f"the image format {name} is not supported (use JPEG, PNG, WEBP, HEIF/HEIC, AVIF, BMP or TIFF)"


def _check_image(image: Image.Image, limits: PhotoLimits) -> None:
    """Dimensions, frames and structure, from the header; nothing is decoded."""
    width, height = image.size
    if width < 1 or height < 1:
        raise NotAnImageError("the image has no pixels")
    if width * height > limits.max_pixels:
        raise TooManyPixelsError(
            f"the image is {width:,}x{height:,} = {_pixels(width * height)}, more than the limit of "
            f"{_pixels(limits.max_pixels)}; send a smaller photo"
        )
    if image.format not in JPEG_FORMATS and image.format != "HEIF":  # an MPO's or HEIF's first picture is the photo
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            raise UnsupportedFormatError(
                f"the image ({image.format}) holds {frames:,} frames (an animation or a multi-page file); "
                "send one still photo"
            )
    try:
        image.verify()  # structural check (PNG chunk CRCs and the like) without decoding pixels
    except Exception as error:
        raise decode_error(error) from error


def _pixels(n: int) -> str:
    return f"{n / 1e6:,.1f} megapixels" if n >= 1_000_000 else f"{n:,} pixels"


def _open(stream: io.BytesIO) -> Image.Image:
    try:
        return Image.open(stream)
    except UnidentifiedImageError as error:
        raise NotAnImageError("the file is not an image (no known image format)") from error
    except Exception as error:
        raise decode_error(error) from error


def decode_error(error: Exception) -> ImageError:
    """A decoder's exception as the ImageError that names the problem."""
    message = str(error)
    if "truncat" in message.lower() or isinstance(error, EOFError):
        return TruncatedImageError("the image file is truncated (incomplete upload?)")
    return NotAnImageError(f"the image could not be decoded ({message or type(error).__name__})")
