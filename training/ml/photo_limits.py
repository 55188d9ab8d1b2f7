"""The limits every photo is held to, as one object: what upload checks, serving, training and comparison all pass.

Why one object: with the limits passed as loose keyword arguments, a caller that forgot one got the library's
default, so a photo accepted at upload under a raised ``COINSITE_MAX_UPLOAD_BYTES`` was refused later by the
prediction task (the coin ended FAILED). Settings build one ``PhotoLimits`` (``settings.COINSITE_PHOTO_LIMITS``) from
the environment and every Django-side path passes that object; the library's default is only for code that runs
without Django (registered models served by ``mlflow models serve``, the command-line tools).

This module imports nothing, so settings can build the object without importing Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_IMAGE_PIXELS = 50_000_000
DECODE_BUDGET_SECONDS = 0.8
DECODE_MEMORY_BYTES = 160 * 1024 * 1024


@dataclass(frozen=True)
class PhotoLimits:
    """Bytes, pixels, CPU seconds and memory one photo may cost."""

    max_bytes: int = MAX_UPLOAD_BYTES
    max_pixels: int = MAX_IMAGE_PIXELS
    budget_seconds: float = DECODE_BUDGET_SECONDS
    max_decode_bytes: int = DECODE_MEMORY_BYTES

    def with_overrides(self, overrides: dict[str, Any]) -> PhotoLimits:
        """These limits with the loose keyword arguments older callers pass (max_bytes=..., budget_seconds=...)."""
        known = {key: value for key, value in overrides.items() if key in _FIELDS and value is not None}
        unknown = set(overrides) - _FIELDS - {"limits"}
        if unknown:
            raise TypeError(f"unknown photo limit(s): {', '.join(sorted(unknown))}")
        return replace(self, **known) if known else self


_FIELDS = frozenset({"max_bytes", "max_pixels", "budget_seconds", "max_decode_bytes"})
DEFAULT_LIMITS = PhotoLimits()
_process_default = DEFAULT_LIMITS


def install_process_default(limits: PhotoLimits) -> None:
    """Make ``limits`` what a caller that passes none gets in this process.

    Django installs the settings-built object at start (coinsite.apps), so a path that forgets to pass it (a
    registered model's own code, a library helper) still holds a photo to the limits it was accepted under."""
    global _process_default
    _process_default = limits


def resolve(limits: PhotoLimits | None = None, **overrides: Any) -> PhotoLimits:
    """``limits`` (this process's default when None) with any loose keyword overrides applied."""
    return (limits or _process_default).with_overrides(overrides)
