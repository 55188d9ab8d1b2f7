"""Re-scoring coins with the current Production after a promotion (new predictions are added, old ones kept).

Chunked: the coins go to the `training` queue as tasks of at most CHUNK coins each, their ids written as runs of
consecutive ids ([low, high] pairs: a few bytes for the dense id ranges a scope selects), never as one message (744k
stale coins made one 5.9 MB message, scored one coin at a time with 6 queries each: about 6.4 h before model time).
A chunk scores its coins BATCH at a time (one forward pass per batch) and is idempotent: a coin whose newest
prediction was made by the serving version since the re-score was requested is left alone, so a redelivered chunk
(acks_late) predicts nothing twice. Progress is the count of the serving version's predictions since the request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from predictions import inference
from predictions.models import Coin, Prediction
from registry.models import ModelVersion
from registry.services import model_version_mirror
from training.ml import photo_errors

from ..signals import coins_rescore_requested

logger = logging.getLogger(__name__)

CHUNK = 500  # coins per task: a task of a few minutes on a CPU worker, redelivered whole if the worker dies
BATCH = 32  # coins per forward pass (the serving micro-batcher's own batch size)
PROGRESS_KEY = "training:rescore:progress"


def id_runs(ids: Sequence[int]) -> list[list[int]]:
    """Sorted ids as runs of consecutive ids: [3, 4, 5, 9] -> [[3, 5], [9, 9]]."""
    runs: list[list[int]] = []
    for coin_id in sorted(set(ids)):
        if runs and runs[-1][1] == coin_id - 1:
            runs[-1][1] = coin_id
        else:
            runs.append([coin_id, coin_id])
    return runs


def id_runs_expand(runs: Sequence[Sequence[int]]) -> list[int]:
    return [coin_id for low, high in runs for coin_id in range(int(low), int(high) + 1)]


def coins_rescore(*, coin_ids: Sequence[int]) -> int:
    """Re-predict chosen coins with the current Production (after commit, on the `training` queue), CHUNK coins per
    task. Coins keep their old predictions; the new one is added, so movers can be listed."""
    ids = sorted({int(i) for i in coin_ids})
    if not ids:
        return 0
    requested_at = timezone.now()
    chunks = [id_runs(ids[start : start + CHUNK]) for start in range(0, len(ids), CHUNK)]
    cache.set(PROGRESS_KEY, {"requested_at": requested_at.isoformat(), "total": len(ids)}, timeout=7 * 86400)

    def send() -> None:
        for runs in chunks:
            coins_rescore_requested.send(sender=None, coin_runs=runs, requested_at=requested_at.isoformat())

    transaction.on_commit(send)
    return len(ids)


@dataclass(frozen=True)
class RescoreProgress:
    """The last re-score: when it was asked for, how many coins, how many the serving version has scored since."""

    requested_at: datetime
    total: int
    done: int

    @property
    def percent(self) -> float:
        return 100.0 * min(self.done, self.total) / self.total if self.total else 100.0


def rescore_progress() -> RescoreProgress | None:
    """Progress of the last re-score (None when none was asked for): the Production version's predictions since the
    request, one index range count on (model_version, created_at)."""
    stored = cache.get(PROGRESS_KEY)
    if not stored:
        return None
    requested_at = datetime.fromisoformat(stored["requested_at"])
    production = ModelVersion.objects.filter(name=settings.MLFLOW_MODEL_NAME, is_production=True).first()
    done = (
        Prediction.objects.filter(model_version=production, created_at__gte=requested_at).count() if production else 0
    )
    return RescoreProgress(requested_at=requested_at, total=int(stored["total"]), done=done)


def coins_rescore_now(*, coin_ids: Sequence[int], requested_at: datetime | None = None) -> int:
    """The work of one chunk, in this process: refresh the Production model first (it may just have moved), then a
    new prediction per coin, BATCH coins per forward pass. With `requested_at`, a coin the serving version predicted
    since then is skipped (a redelivered chunk). Returns how many got a prediction now."""
    from registry import serving  # lazy: torch loads only in the worker that re-scores, not with the admin's views

    try:
        serving.get_batcher().holder.refresh()
        version = serving.get_batcher().holder.current().version
    except serving.NoProductionModel:
        return 0
    mirror = model_version_mirror(version=version)
    # A coin hidden with its photos deleted (coin_delete) has empty names: nothing to score, and opening one raised
    # ValueError out of the whole chunk.
    coins = Coin.objects.filter(pk__in=list(coin_ids)).exclude(front_image="").exclude(back_image="").order_by("id")
    if requested_at is not None:
        coins = coins.exclude(last_prediction__model_version=mirror, last_prediction__created_at__gte=requested_at)
    coins = list(coins.only("id", "owner_id", "front_image", "back_image"))
    done = 0
    for start in range(0, len(coins), BATCH):
        done += _batch_predict(coins[start : start + BATCH], mirror=mirror)
    return done


def _batch_predict(coins: list[Coin], *, mirror) -> int:
    """One forward pass for the batch and its rows in one transaction; a photo that cannot be read (or is gone)
    sends the batch through coin_predict one coin at a time, which marks that coin failed."""
    from registry import serving  # lazy: as in coins_rescore_now

    try:
        pairs = []
        for coin in coins:
            with coin.front_image.open("rb") as front, coin.back_image.open("rb") as back:
                pairs.append((front.read(), back.read()))
        results = serving.predict_pairs(pairs)
    except (photo_errors.ImageError, FileNotFoundError, ValueError) as error:
        logger.info("re-score batch of %d coins one by one: %s", len(coins), error)
        return sum(inference.coin_predict(coin_id=coin.pk, force=True) is not None for coin in coins)
    with transaction.atomic():
        for coin, result in zip(coins, results, strict=True):
            inference.prediction_store(coin=coin, result=result, model_version=mirror)
    return len(coins)
