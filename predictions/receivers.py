"""Reactions of the predictions app: to sign-ups (every one becomes a collector) and to the registry's signals. Its
own services start its tasks with plain calls (predictions/enqueue.py), not signals."""

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
