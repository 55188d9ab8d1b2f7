"""The first model's time to go: the estimate `make run` prints and every page's banner shows while it trains.

Both come from measurements, not a fixed guess: before the first epoch, a per-coin cost measured on the 2-core
development machine scaled by the machine's current load (os.getloadavg); from the first epoch on, the speed the run
itself measured (elapsed time per epoch, which already contains whatever load the machine carries). The fixed guess
this replaces printed "roughly 2.0 minutes" for a run that took 32 minutes on a shared 2-core machine at load ~4.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.utils import timezone

from ..models import TrainingRun

# After the last epoch: averaging the folds, the ONNX and int8 exports, MLflow logging, registration, comparison
# (measured 20-40 s on the 2-core development machine with a 3-fold reader).
TAIL_SECONDS = 30.0


def machine_load() -> tuple[float, int]:
    """(1-minute load average, cores): what slows a run down beside its own work."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return load, os.cpu_count() or 1


def load_slowdown(load: float, cpus: int) -> float:
    """How many times longer than on an idle machine a CPU-bound run takes while `load` other runnable tasks share
    the `cpus` cores: each runnable task gets about an equal share, so a run wanting one more core gets
    cpus / (load + 1) of them once load + 1 exceeds the cores."""
    return max(1.0, (load + 1.0) / cpus)


def remaining_seconds(*, elapsed: float, done: int, total: int, tail: float = TAIL_SECONDS) -> float | None:
    """Seconds left at the speed measured so far: `done` of `total` epochs took `elapsed` seconds, and the fixed
    `tail` follows the last one. None before the first epoch (nothing measured yet)."""
    if done <= 0:
        return None
    return elapsed / done * max(total - done, 0) + tail


@dataclass(frozen=True)
class FirstModelProgress:
    """A first model on its way (no version is in Production): what the banner says."""

    run_id: int
    status: str
    epochs_done: int
    epochs_total: int
    minutes_left: float | None  # None until an epoch was measured

    @property
    def time_left(self) -> str:
        """ "about 3 min to go", "under a minute to go", or "" before the first epoch was measured."""
        if self.minutes_left is None:
            return ""
        if self.minutes_left < 1:
            return "under a minute to go"
        return f"about {round(self.minutes_left)} min to go"


def first_model_progress() -> FirstModelProgress | None:
    """The oldest queued or running training that is not a fine-tune (a first model can only be trained from the
    base), with its measured time to go; None when nothing trains. Callers show it only while no model serves."""
    run = (
        TrainingRun.objects.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING], fine_tune=False)
        .order_by("created_at", "id")
        .only("id", "status", "progress", "started_at")
        .first()
    )
    if run is None:
        return None
    progress = run.progress or {}
    folds, epochs = int(progress.get("folds") or 0), int(progress.get("epochs") or 0)
    fold, epoch = int(progress.get("fold") or 0), int(progress.get("epoch") or 0)
    done = max(fold - 1, 0) * epochs + epoch if fold else 0
    left = None
    if run.started_at is not None:
        elapsed = (timezone.now() - run.started_at).total_seconds()
        seconds = remaining_seconds(elapsed=elapsed, done=done, total=folds * epochs)
        left = None if seconds is None else seconds / 60
    return FirstModelProgress(
        run_id=run.pk, status=run.status, epochs_done=done, epochs_total=folds * epochs, minutes_left=left
    )
