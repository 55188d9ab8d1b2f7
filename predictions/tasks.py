"""Celery tasks of the `inference` queue: thin, take ids, re-read state, call services."""

from celery import shared_task

from . import inference, services, sweeps


@shared_task(name="predictions.tasks.coin_predict_task", acks_late=True)
def coin_predict_task(coin_id: int, force: bool = False) -> None:
    """Predict one coin's year: a no-op if the serving version already scored it, unless `force` (re-score)."""
    inference.coin_predict(coin_id=coin_id, force=force)


@shared_task(name="predictions.tasks.predict_pending_task")
def predict_pending_task(older_than_seconds: int = 120) -> int:
    """Safety net for 'nothing accepted is lost': re-enqueue coins still pending after a while (a lost message, a
    model that did not exist yet). Scheduled by beat every few minutes; idempotent."""
    return services.coins_requeue_pending(older_than_seconds=older_than_seconds)


@shared_task(name="predictions.tasks.photo_orphans_sweep_task")
def photo_orphans_sweep_task() -> int:
    """Remove photo files that no coin names, once they are older than the grace period (beat, every 15 minutes)."""
    return sweeps.photo_orphans_sweep()[1]
