"""Photo decoding, validation and the ONE preprocessing path shared by training, evaluation and serving.

Why one path: a published model for this very task used other image sizes and normalisation at inference than in
training. Here every photo goes through load_image() (validate, EXIF orientation, reduced-scale decode, square
centre crop, resize) and then the callable from build_transforms(); train=True only adds augmentation on top of the
same steps. Augmentation never flips: a mirrored coin has mirrored inscriptions and is not a coin that exists.

Validation errors are ImageError subclasses carrying a stable ``code``, the HTTP status that fits and a message that
names the problem, so the site can answer 400/413/415 instead of 500.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pybase64
import torch
import torch.nn.functional as F
from PIL import Image

from training.ml import decoding

# Re-exported (`X as X`): callers, and the model files of registered versions, name these as images.<Name>.
from training.ml.decoding import MAX_IMAGE_PIXELS as MAX_IMAGE_PIXELS
from training.ml.decoding import MAX_UPLOAD_BYTES as MAX_UPLOAD_BYTES
from training.ml.decoding import SUPPORTED_FORMATS as SUPPORTED_FORMATS
from training.ml.photo_errors import DecodeTooCostlyError as DecodeTooCostlyError
from training.ml.photo_errors import EmptyImageError as EmptyImageError
from training.ml.photo_errors import ImageError as ImageError
from training.ml.photo_errors import ImageTooLargeError as ImageTooLargeError
from training.ml.photo_errors import InvalidBase64Error as InvalidBase64Error
from training.ml.photo_errors import NotAnImageError as NotAnImageError
from training.ml.photo_errors import TooManyPixelsError as TooManyPixelsError
from training.ml.photo_errors import TruncatedImageError as TruncatedImageError
from training.ml.photo_errors import UnsupportedFormatError as UnsupportedFormatError
from training.ml.photo_errors import human_bytes
from training.ml.photo_limits import PhotoLimits as PhotoLimits
from training.ml.photo_limits import resolve

if TYPE_CHECKING:
    from training.ml.config import TrainConfig

# ImageNet statistics: right for local pretrained weights and harmless for random init.
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)
GRAY_MEAN = (0.449,)
GRAY_STD = (0.226,)


# --- decoding and validation ---------------------------------------------------------------------------------------


def decode_base64(text: str, *, max_bytes: int | None = None) -> bytes:
    """Decode base64 (standard or URL-safe, padding optional, ``data:`` URL prefix allowed) to bytes.

    The size limit is checked on the text length first, so a huge payload is refused before it is decoded. Decoding
    uses pybase64 (SIMD): a 12 MP photo's 6.4 MB of base64 takes 0.2 ms there against 10 ms in the standard library,
    and the common case (canonical base64, no line breaks) is decoded straight from the string without a copy.
    """
    max_bytes = max_bytes if max_bytes is not None else resolve().max_bytes
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError as error:
            raise InvalidBase64Error("the image is not valid base64 (non-ASCII characters)") from error
    if not isinstance(text, str):
        raise InvalidBase64Error(f"the image must be a base64 string, got {type(text).__name__}")
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or ";base64" not in header:
            raise InvalidBase64Error("a data: URL must be base64 encoded (data:image/jpeg;base64,...)")
    encoded_limit = 4 * math.ceil(max_bytes / 3) + 4
    if len(text) > 2 * encoded_limit + 4096:  # refuse huge payloads before copying them (line breaks allowed)
        raise ImageTooLargeError(f"the image is larger than the limit of {human_bytes(max_bytes)}")
    data = _decode_canonical_base64(text) if len(text) <= encoded_limit else None
    if data is None:
        data = _decode_lenient_base64(text, encoded_limit=encoded_limit, max_bytes=max_bytes)
    if not data:
        raise EmptyImageError("the image is empty (zero bytes)")
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            f"the image is {human_bytes(len(data))}, more than the limit of {human_bytes(max_bytes)}"
        )
    return data


def _decode_canonical_base64(text: str) -> bytes | None:
    """Standard alphabet, padded, no whitespace: decoded in place. None when the text is anything else."""
    if not text.isascii():
        return None
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _decode_lenient_base64(text: str, *, encoded_limit: int, max_bytes: int) -> bytes:
    """Line breaks, URL-safe alphabet and missing padding allowed; anything else is a named InvalidBase64Error."""
    compact = "".join(text.split())
    if not compact:
        raise EmptyImageError("the image is empty (zero bytes)")
    if len(compact) > encoded_limit:
        raise ImageTooLargeError(f"the image is larger than the limit of {human_bytes(max_bytes)}")
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    if len(compact) % 4:
        compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidBase64Error(f"the image is not valid base64 ({error})") from error


def validate_image_bytes(data: bytes, *, limits: PhotoLimits | None = None, **overrides: float) -> str:
    """Check that ``data`` is a complete photo in a supported format within the limits; return the format name.

    Decodes at reduced scale (fast for 12 MP JPEGs) but through the whole file, so truncation is caught.
    """
    return decoding.decode(data, target=64, limits=limits, **overrides).format


def load_image(
    data: bytes,
    *,
    size: int = 128,
    grayscale: bool = False,
    limits: PhotoLimits | None = None,
    **overrides: float,
) -> Image.Image:
    """Validate and decode a photo to a ``size`` x ``size`` RGB (or L) image, EXIF orientation applied.

    Big JPEGs are decoded by libjpeg at 1/2..1/8 scale (``draft``, to at least twice the target) and then, like other
    formats, box-reduced (``reduce``) to between one and two times the target (from three times it on) before the
    final resize, so a 12 MP phone photo costs tens of ms, not hundreds.
    The photo is centre-cropped to a square first: a coin is round and centred, and squashing would distort it.
    The decode is priced first and refused over its budget (training.ml.decoding).
    """
    photo = decoding.decode(data, target=2 * size, limits=limits, **overrides)
    return photo.model_image(size=size, grayscale=grayscale)


def _finish(image: Image.Image, *, size: int, grayscale: bool) -> Image.Image:
    """Turn upright, crop to a centred square, reduce, convert and resize (decoding.finish)."""
    return decoding.finish(image, size=size, grayscale=grayscale)


def check_header(data: bytes, *, limits: PhotoLimits | None = None, **overrides: float) -> str:
    """The checks that need no pixel decoding (bytes, size, format, dimensions, structure, decode price); returns
    the format name.

    What only decoding can find (a truncated or corrupt pixel stream) is left to load_image()/load_uint8(): a
    caller can start storing a photo that passed this while it decodes it.
    """
    return decoding.decode_plan(data, limits=limits, **overrides).format


def _open_checked(data: bytes, *, target: int, limits: PhotoLimits | None = None, **overrides: float) -> Image.Image:
    """The decoded photo near ``target`` (reduced scale where the format allows), before any crop or resize."""
    return decoding.decode(data, target=target, limits=limits, **overrides).image


# --- tensors, normalisation and augmentation -----------------------------------------------------------------------


def image_to_uint8(image: Image.Image | torch.Tensor | np.ndarray) -> torch.Tensor:
    """PIL image or array to a uint8 C x H x W tensor (no copy for tensors that already are one).

    The H x W x C -> C x H x W copy is numpy's: torch's permute().contiguous() took 1.5 ms for a 192 px photo on the
    2-core machine against 0.07 ms (a serving request converts two)."""
    if isinstance(image, torch.Tensor):
        tensor = image
    else:
        array = np.asarray(image)
        array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        tensor = torch.from_numpy(np.array(array, order="C", copy=True))  # owned and writable, whatever the source
    if tensor.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 image, got {tensor.dtype}")
    return tensor.contiguous()


class Normalize(torch.nn.Module):
    """uint8 (N, C, H, W) in [0, 255] -> float, normalised with fixed per-channel statistics."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mean = RGB_MEAN if channels == 3 else GRAY_MEAN
        std = RGB_STD if channels == 3 else GRAY_STD
        scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, -1, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, -1, 1, 1)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, batch.float(), self.scale)


class Augment(torch.nn.Module):
    """Light, batched photo augmentation on uint8 (N, C, H, W): rotation, scale, shift, colour, blur. No flips.

    Batched because per-image transforms cost more than the model on 2 CPU cores; the same module serves one image
    (a batch of one) in build_transforms(train=True), so both paths draw from the same distribution. Every sampled
    affine matrix has a positive determinant (rotation times a positive scale): it can never mirror the coin.
    """

    def __init__(
        self,
        *,
        rotation_degrees: float,
        scale: float,
        translate: float,
        color: float,
        blur_probability: float,
        geometric_probability: float = 0.5,
    ) -> None:
        super().__init__()
        self.rotation = math.radians(rotation_degrees)
        self.scale = scale
        self.translate = translate
        self.color = color
        self.blur_probability = blur_probability
        # The bilinear warp is most of the cost (about 6% of a training step if applied to every photo); half of
        # the photos keep their framing, as torchvision's RandomApply(RandomAffine, p=0.5) would.
        self.geometric_probability = geometric_probability

    def sample_matrices(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 2, 3) affine matrices in grid_sample's normalised coordinates."""
        uniform = torch.rand(n, 4, generator=generator) * 2 - 1
        angle = uniform[:, 0] * self.rotation
        zoom = 1 + uniform[:, 1] * self.scale
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        shift = uniform[:, 2:] * (2 * self.translate)
        return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)

    def _grid(self, theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """grid_sample's (N, H, W, 2) sampling grid for the matrices: x' = a x + b y + c, built separably."""
        xs = (torch.arange(width, dtype=torch.float32) * 2 + 1) / width - 1
        ys = (torch.arange(height, dtype=torch.float32) * 2 + 1) / height - 1
        grid = torch.empty(theta.shape[0], height, width, 2)
        for row in (0, 1):
            along_x = theta[:, row, 0, None] * xs  # (N, W)
            along_y = theta[:, row, 1, None] * ys + theta[:, row, 2, None]  # (N, H)
            torch.add(along_x[:, None, :], along_y[:, :, None], out=grid[..., row])
        return grid

    def forward(
        self, batch: torch.Tensor, generator: torch.Generator | None = None, points: torch.Tensor | None = None
    ) -> torch.Tensor:
        """uint8 (N, C, H, W) -> float (N, C, H, W) in [0, 255], augmented.

        ``points`` (N, 2) in grid_sample's normalised coordinates (x, y in [-1, 1]), when given, are moved in place
        with their photo (the date reader's location target follows the warp).
        """
        n, channels, height, width = batch.shape
        x = batch.float()
        if (self.rotation or self.scale or self.translate) and self.geometric_probability > 0:
            chosen = (torch.rand(n, generator=generator) < self.geometric_probability).nonzero().squeeze(1)
            if len(chosen):
                theta = self.sample_matrices(len(chosen), generator)
                grid = self._grid(theta, height, width)
                warped = F.grid_sample(x[chosen], grid, mode="bilinear", padding_mode="border", align_corners=False)
                x.index_copy_(0, chosen, warped)
                if points is not None:  # grid: input = A @ output + t, so output = A^-1 (input - t)
                    moved = torch.linalg.solve(theta[:, :, :2], (points[chosen] - theta[:, :, 2]).unsqueeze(2))
                    points[chosen] = moved.squeeze(2)
        if self.color:
            factors = 1 + (torch.rand(n, 3, 1, 1, 1, generator=generator) * 2 - 1) * self.color
            brightness, contrast, saturation = factors[:, 0], factors[:, 1], factors[:, 2]
            if channels != 3:
                saturation = torch.ones_like(saturation)
            # saturation: y = g + s (x - g), g the luminance; then contrast and brightness around the mean
            # luminance m: z = (y - m) c + m b. Fused into one pass over the 3 channels:
            # z = x (s c) + [g (1 - s) c + m (b - c)], the bracket computed on the 1-channel luminance only.
            gray = x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114 if channels == 3 else x
            mean = gray.mean((2, 3), keepdim=True)
            offset = torch.addcmul(mean * (brightness - contrast), gray, (1 - saturation) * contrast)
            x = torch.addcmul(offset, x, saturation * contrast)
        if self.blur_probability:
            chosen = torch.rand(n, generator=generator) < self.blur_probability
            if bool(chosen.any()):
                index = chosen.nonzero().squeeze(1)
                x[index] = _blur3(x[index])
        return x.clamp_(0, 255)


def _blur3(x: torch.Tensor) -> torch.Tensor:
    """A light separable [1, 2, 1] / 4 blur (sigma about 0.7 px), like a slightly soft phone photo."""
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    rows = torch.add(padded[..., :-2], padded[..., 2:]).add_(padded[..., 1:-1], alpha=2.0)
    return torch.add(rows[..., :-2, :], rows[..., 2:, :]).add_(rows[..., 1:-1, :], alpha=2.0).mul_(1 / 16)


class CoinTransform:
    """Image -> normalised float tensor, the single preprocessing path (see build_transforms).

    ``steps`` lists what is applied, in order; train=True adds exactly one Augment step, nothing else.
    Call it on one image (PIL or uint8 C x H x W tensor) or use ``batch`` on uint8 (N, C, H, W): same steps.
    """

    def __init__(self, *, size: int, channels: int, augment: Augment | None) -> None:
        self.size = size
        self.channels = channels
        self.augment = augment
        self.normalize = Normalize(channels)
        # (PIL images first go through _finish: centre square, upright, resize; load_image already did it)
        self.steps: list[Any] = [image_to_uint8]
        if augment is not None:
            self.steps.append(augment)
        self.steps.append(self.normalize)

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        if isinstance(image, Image.Image):
            image = _finish(image, size=self.size, grayscale=self.channels == 1)
        tensor = image_to_uint8(image)
        if tensor.shape[-2:] != (self.size, self.size):
            tensor = F.interpolate(tensor[None].float(), size=(self.size, self.size), mode="bilinear")[0]
            tensor = tensor.round().clamp(0, 255).to(torch.uint8)
        return self.batch(tensor.unsqueeze(0))[0]

    def batch(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (N, C, size, size) -> float normalised (N, C, size, size)."""
        if batch.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channel(s), got {batch.shape[1]}")
        x = self.augment(batch, generator) if self.augment is not None else batch
        return self.normalize(x)

    def __repr__(self) -> str:
        names = [getattr(s, "__name__", type(s).__name__) for s in self.steps]
        return f"CoinTransform(size={self.size}, channels={self.channels}, steps={names})"


def build_transforms(config: TrainConfig, *, train: bool) -> CoinTransform:
    """The preprocessing for ``config``: train=False is what evaluation and serving use; train=True adds augmentation.

    Returns a callable (PIL image or uint8 tensor -> float C x H x W, normalised) with a ``batch`` method.
    """
    augment = None
    if train and config.augment:
        augment = Augment(
            rotation_degrees=config.aug_rotation,
            scale=config.aug_scale,
            translate=config.aug_translate,
            color=config.aug_color,
            blur_probability=config.aug_blur,
        )
    return CoinTransform(size=config.image_size, channels=config.in_channels, augment=augment)


def load_uint8(data: bytes, config: TrainConfig, **limits: Any) -> torch.Tensor:
    """Validate and decode photo bytes to the uint8 C x size x size tensor that the transforms take.

    ``limits``: ``limits=PhotoLimits`` (what Django-side callers pass) and/or the loose overrides of older callers."""
    return image_to_uint8(load_image(data, size=config.image_size, grayscale=config.grayscale, **limits))


def preprocess_pair(front: bytes, back: bytes, config: TrainConfig, **limits: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Both photos of one coin through the evaluation path: (C, H, W) float tensors each. Errors name the side."""
    front_batch, back_batch = preprocess_batch([(front, back)], config, **limits)
    return front_batch[0], back_batch[0]


def preprocess_batch(
    pairs: Sequence[tuple[bytes, bytes]], config: TrainConfig, **limits: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Photo pairs through the evaluation path: (N, C, H, W) float tensors for the fronts and for the backs.

    An ImageError names the side (``field`` "front_image"/"back_image", plus the input index when N > 1).
    """
    transform = build_transforms(config, train=False)
    fronts, backs = [], []
    for index, (front, back) in enumerate(pairs):
        for side, data, out in (("front", front, fronts), ("back", back, backs)):
            try:
                out.append(load_uint8(data, config, **limits))
            except ImageError as error:
                if error.field is None:
                    error.field = f"{side}_image" if len(pairs) == 1 else f"inputs[{index}].{side}_image"
                error.message = f"{side} photo: {error.message}"
                raise
    if not fronts:
        empty = torch.empty(0, config.in_channels, config.image_size, config.image_size)
        return empty, empty.clone()
    return transform.batch(torch.stack(fronts)), transform.batch(torch.stack(backs))


TransformFn = Callable[[Image.Image], torch.Tensor]


def image_format(data: bytes) -> str:
    """The format name ("JPEG", "PNG", ...) from the header alone: for photos already validated by load_image()."""
    with Image.open(io.BytesIO(data)) as image:
        return (image.format or "").upper()
