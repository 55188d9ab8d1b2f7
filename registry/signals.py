"""Signals of the registry: how the layers above learn that Production moved, without the registry importing them.

- promotion_recorded: sent inside the promotion's transaction, right after the audit row is written. Receivers write
  what must commit or roll back with the promotion (the training run's verdict).
- production_changed: sent once the promotion committed (transaction.on_commit). Receivers react to the new
  Production (swap this process's model, predict coins that waited for a first model).

Both carry `promotion` (the Promotion row), `version` (now Production), `previous` (the version it replaced, None for
the first) and `action` (Promotion.Action).
"""

from __future__ import annotations

from django.dispatch import Signal

promotion_recorded = Signal()
production_changed = Signal()
