"""Signals of the predictions app: how its services ask for a prediction without importing predictions.tasks.

The prediction tasks call the services (the pending sweeper re-queues through them), so services importing tasks
would make an import cycle. The services send this signal; predictions/receivers.py enqueues the task.

- coin_prediction_requested: `coin_id` and `force` (predict again even if the serving version already did).
"""

from __future__ import annotations

from django.dispatch import Signal

coin_prediction_requested = Signal()
