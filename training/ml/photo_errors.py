"""What can be wrong with a photo: one ImageError subclass per problem, each with a stable ``code`` for clients, the
HTTP status that fits and a message that names the problem, so the site answers 400/413/415 and never 500.

Re-exported by ``training.ml.images``, where callers (and the model files of registered versions) import them.
"""

from __future__ import annotations


class ImageError(ValueError):
    """A photo that cannot be used; ``code`` is stable for clients, ``field`` is set by whoever knows the field."""

    code = "invalid_image"
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class EmptyImageError(ImageError):
    code = "empty"
    http_status = 400


class ImageTooLargeError(ImageError):
    code = "too_large"
    http_status = 413


class TooManyPixelsError(ImageError):
    code = "too_many_pixels"
    http_status = 413


class DecodeTooCostlyError(ImageError):
    """Decoding would cost more CPU time or memory than one photo may (a scan bomb, a pixel flood)."""

    code = "decode_too_costly"
    http_status = 413


class UnsupportedFormatError(ImageError):
    code = "unsupported_format"
    http_status = 415


class NotAnImageError(ImageError):
    code = "not_an_image"
    http_status = 400


class TruncatedImageError(ImageError):
    code = "truncated"
    http_status = 400


class InvalidBase64Error(ImageError):
    code = "invalid_base64"
    http_status = 400


def human_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} bytes"
