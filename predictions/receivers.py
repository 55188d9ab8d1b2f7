"""Reactions of the predictions app: to sign-ups (every one becomes a collector), to its own services' requests for a
prediction (the Celery task is enqueued here, so services need not import tasks) and to the registry's signals."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db.models.signals import post_save
from django.dispatch import receiver

from registry.signals import production_changed

from .roles import COLLECTOR
from .services import coins_requeue_pending
from .signals import coin_prediction_requested
from .tasks import coin_predict_task

logger = logging.getLogger(__name__)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="user_joins_collectors")
def user_joins_collectors(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if created and not raw:
        group, _ = Group.objects.get_or_create(name=COLLECTOR)
        instance.groups.add(group)


@receiver(production_changed, dispatch_uid="predictions_coins_waiting_predict")
def coins_waiting_predict(sender: Any, *, previous: int | None, **kwargs: Any) -> None:
    """The first model is in Production: coins uploaded while there was none get their prediction now (the pending
    sweeper would, but only minutes later)."""
    if previous is not None:
        return
    count = coins_requeue_pending(older_than_seconds=0)
    logger.info("first model in production: %s waiting coins queued for prediction", count)


@receiver(coin_prediction_requested, dispatch_uid="predictions_coin_predict_enqueue")
def coin_predict_enqueue(sender: Any, *, coin_id: int, force: bool = False, **kwargs: Any) -> None:
    """Hand the coin to the `inference` queue (eagerly in-process without a broker). The task re-reads the coin and
    skips one the serving version already scored, so a duplicate request costs nothing."""
    coin_predict_task.delay(coin_id, force=force)
