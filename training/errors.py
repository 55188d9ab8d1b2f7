"""What can go wrong with a training run, and how a failure is told to model owners (short, without secrets).

A cancellation is the ML library's own TrainingCancelled (training.ml.train), raised by fit() and passed on as is.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError

if TYPE_CHECKING:  # annotations only: the models import nothing from here
    from .models import TrainingRun

ERROR_MAX_CHARS = 500


class TrainingBusy(Exception):
    """Another training run holds the lock (its lease has not expired): this one stays queued."""

    def __init__(self, holder: TrainingRun | None) -> None:
        self.holder = holder
        if holder is None:
            message = "Another training run is in progress."
        else:
            beat = holder.heartbeat_at.isoformat(timespec="seconds") if holder.heartbeat_at else "never"
            message = f"Training run #{holder.pk} is in progress (last heartbeat {beat}); only one runs at a time."
        super().__init__(message)


class TrainingLeaseLost(Exception):
    """This worker's lease was taken (it stopped heart-beating long enough to be reaped): stop without writing."""


class FineTuneRegressed(Exception):
    """Fine-tuning made the model worse on the evaluation set: the candidate is discarded."""


_SECRET_PATTERNS = [
    (re.compile(r"(\w+://)[^/\s:@]+:[^/\s@]+@"), r"\1***@"),  # credentials in URLs (database, broker, tracking)
    (re.compile(r"(?i)(password|token|secret|api[_-]?key)(\s*[=:]\s*)\S+"), r"\1\2***"),
]


def error_text(error: BaseException, *, with_type: bool = True) -> str:
    """A short, secret-free description of a failure, shown to model owners.

    `with_type=True` (a run's error field): "RuntimeError: reason", so a log reader knows what failed.
    `with_type=False` (an admin message): the reason alone; a ValidationError's messages joined by "; ".
    """
    if with_type:
        text = f"{type(error).__name__}: {error}".strip()
    elif isinstance(error, ValidationError):
        text = "; ".join(error.messages)
    else:
        text = str(error) or type(error).__name__
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    if settings.SECRET_KEY:
        text = text.replace(settings.SECRET_KEY, "***")
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"
