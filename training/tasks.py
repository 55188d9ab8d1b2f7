"""Celery tasks of the `training` queue: thin, take ids, call services."""

from celery import shared_task

from . import services


@shared_task(name="training.tasks.dataset_freeze_task")
def dataset_freeze_task(kind: str = "training") -> int:
    """Freeze the current labels (used by the scheduler and to check a worker end to end)."""
    return services.dataset_freeze(kind=kind).id
