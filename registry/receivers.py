"""The registry's own reaction to a new Production: this process swaps its model now."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.dispatch import receiver

from .models import Promotion
from .signals import production_changed

logger = logging.getLogger(__name__)


@receiver(production_changed, dispatch_uid="registry_serving_refresh")
def serving_refresh(sender: Any, *, action: str, **kwargs: Any) -> None:
    """This process serves predictions too (embedded default): swap to the new Production now instead of waiting for
    the alias poll. Other processes pick it up within INFERENCE_ALIAS_POLL_SECONDS. A first version needs no swap:
    nothing was loaded before it. Nor does a process that never imported registry.serving (the admin of a web host
    that only serves pages, beat): it holds no model, and importing serving here would load torch into it."""
    if action == Promotion.Action.INITIAL:
        return
    serving = sys.modules.get("registry.serving")
    if serving is None:
        return
    try:
        if serving.production_version_loaded() is not None:
            serving.get_batcher().holder.refresh()
    except Exception:  # noqa: BLE001 - the poller will catch up
        logger.warning("could not refresh this process's inference model", exc_info=True)
