"""coinsite: predicts a coin's minting year from a front and a back photo."""

from .celery import app as celery_app

__all__ = ("celery_app",)
