"""Signals of the training app: how its services ask for background work without importing training.tasks.

Every task calls a service, and some services must start a task (a queued run, the next run once the lock is free,
a re-scoring), so services importing tasks and tasks importing services would make an import cycle. The services
send these signals once their transaction committed; training/receivers.py enqueues the task. The task names stay
what the broker, the routes and the beat schedule know.

- training_run_queued: `run_id`, a run waiting in QUEUED that a worker should execute.
- coins_rescore_requested: `coin_runs` ([low, high] runs of coin ids: one chunk) and `requested_at` (ISO time),
  coins to predict again with the current Production; sent once per chunk.
- training_fold_queued: `run_id`, `fold`, one fold of a fold-parallel run for a training worker.
- training_run_folds_done: `run_id`, every fold of a fold-parallel run is done: finalise it.
- sweep_queued: `sweep_id`, a sweep waiting in QUEUED: create its study and queue its trials.
- sweep_trial_queued: `sweep_id`, `index`, one trial task of a sweep for a training worker.
- sweep_trials_done: `sweep_id`, every trial task of a sweep settled: finalise it.
- monitoring_refresh_requested: `weeks`, the monitoring page's figures of that window are old: compute them again.
"""

from __future__ import annotations

from django.dispatch import Signal

training_run_queued = Signal()
coins_rescore_requested = Signal()
training_fold_queued = Signal()
training_run_folds_done = Signal()
monitoring_refresh_requested = Signal()
sweep_queued = Signal()
sweep_trial_queued = Signal()
sweep_trials_done = Signal()
