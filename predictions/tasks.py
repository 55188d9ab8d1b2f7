"""Celery tasks of the `inference` queue: thin, take ids, re-read state, call services."""

from celery import shared_task


@shared_task(name="predictions.tasks.coin_predict_task", acks_late=True)
def coin_predict_task(coin_id: int) -> None:
    """Predict one coin's year (no-op if it already has a prediction from the current Production version)."""
    from . import inference

    inference.coin_predict(coin_id=coin_id)
