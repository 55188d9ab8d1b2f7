"""Re-scoring coins with the current Production after a promotion (new predictions are added, old ones kept)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from predictions import inference

from ..signals import coins_rescore_requested


def coins_rescore(*, coin_ids: Sequence[int]) -> int:
    """Re-predict chosen coins with the current Production (after commit, on the `training` queue). Coins keep their
    old predictions; the new one is added, so movers can be listed."""
    ids = [int(i) for i in coin_ids]
    if ids:
        transaction.on_commit(lambda: coins_rescore_requested.send(sender=None, coin_ids=ids))
    return len(ids)


def coins_rescore_now(*, coin_ids: Sequence[int]) -> int:
    """The work of coins_rescore, in this process: refresh the Production model first (it may just have moved), then
    force a new prediction per coin. Returns how many got one."""
    from registry import serving  # lazy: torch loads only in the worker that re-scores, not with the admin's views

    try:
        serving.get_batcher().holder.refresh()
    except serving.NoProductionModel:
        return 0
    done = 0
    for coin_id in coin_ids:
        if inference.coin_predict(coin_id=coin_id, force=True) is not None:
            done += 1
    return done
