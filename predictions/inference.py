"""What serving writes: a Prediction row per scored coin, with the mirror row of the version that made it.

The model itself (holder, batcher, scoring) is the registry's (registry.serving); this module stores its answers.
registry.serving (torch) is imported by the function that scores, so the pages and the admin, which import this
module for prediction_store, do not load torch.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from registry.outcomes import NoProductionModel, PairPrediction
from registry.services import model_version_mirror
from training.ml import photo_errors

from .metrics import prediction_count_on_commit
from .models import Coin, Prediction

logger = logging.getLogger(__name__)


def prediction_store(*, coin: Coin, result: PairPrediction, model_version=None) -> Prediction:
    """Record a prediction with the mirror row of the version that made it, and mark the coin predicted.

    `model_version`: that mirror row when the caller has it already (a batch looks it up once, not per coin). Inside
    a caller's transaction no savepoint is made: a failure here fails the caller's whole batch anyway.
    """
    if model_version is None:
        model_version = model_version_mirror(version=result.version)
    with transaction.atomic(savepoint=False):
        prediction = Prediction.objects.create(
            coin=coin,
            year=result.year,
            interval_low=max(0, result.low),
            interval_high=result.high,
            model_version=model_version,
            latency_ms=result.latency_ms,
            interval_level=result.details.get("level"),
            alternatives=result.details.get("alternatives", []),
            coin_score=result.details.get("coin_score"),
            read_score=result.details.get("read_score"),
            rejected=result.details.get("rejected", ""),
            second_look=result.details.get("second_look", ""),
            readers=result.details.get("readers", ""),
            ocr_reading=result.details.get("ocr"),
            uncertainty=result.uncertainty,
        )
        Coin.objects.filter(pk=coin.pk).update(status=Coin.Status.PREDICTED, status_detail="")
        prediction_count_on_commit(version=result.version, rejected=prediction.rejected)
    coin.status = Coin.Status.PREDICTED
    return prediction


def coin_predict(*, coin_id: int, force: bool = False) -> Prediction | None:
    """Predict one stored coin. Safe to run twice (acks_late redelivery): a coin already scored by the serving
    version keeps that prediction unless `force` (re-score). Leaves the coin pending when no model exists yet."""
    from registry.serving import get_batcher, predict_pairs  # lazy: torch loads only in processes that score

    coin = Coin.objects.filter(pk=coin_id).first()
    if coin is None or not coin.front_image.name or not coin.back_image.name:
        return None  # gone, or hidden with its photos deleted (coin_delete): nothing left to score
    try:
        version = get_batcher().holder.current().version
    except NoProductionModel:
        logger.info("coin %s stays pending: no production model yet", coin_id)
        return None
    if not force:
        existing = coin.predictions.filter(
            model_version__name=settings.MLFLOW_MODEL_NAME, model_version__version=version
        )
        if existing.exists():
            return existing.first()
    try:
        with coin.front_image.open("rb") as f:
            front = f.read()
        with coin.back_image.open("rb") as f:
            back = f.read()
        [result] = predict_pairs([(front, back)])
    except (photo_errors.ImageError, FileNotFoundError) as error:
        Coin.objects.filter(pk=coin.pk).update(status=Coin.Status.FAILED, status_detail=str(error)[:300])
        return None
    if force:
        return prediction_store(coin=coin, result=result)
    return _prediction_store_once(coin=coin, result=result)


def _prediction_store_once(*, coin: Coin, result: PairPrediction) -> Prediction:
    """Store the prediction unless one of the same version landed while this one was scored: two tasks for one coin
    (a requeue by age beside the original message, redelivered after its worker died) may run at once on two threads
    or workers. The coin's row lock (SQLite: the write lock its IMMEDIATE transaction takes) orders them; the second
    finds the first's row and stores nothing."""
    model_version = model_version_mirror(version=result.version)  # a registry call: before the transaction
    with transaction.atomic():
        list(Coin.objects.select_for_update().filter(pk=coin.pk).values_list("pk", flat=True))
        existing = coin.predictions.filter(
            model_version__name=settings.MLFLOW_MODEL_NAME, model_version__version=result.version
        ).first()
        if existing is not None:
            return existing
        return prediction_store(coin=coin, result=result, model_version=model_version)
