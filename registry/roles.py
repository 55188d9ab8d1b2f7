"""The model owner's role: who may promote, roll back and train. Checks go through permissions, never group names."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

MODEL_OWNER = "model_owner"


def can_promote(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Only model owners move the `production` alias."""
    return user.is_authenticated and user.has_perm("registry.promote_modelversion")


def can_train(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Only model owners start and cancel training runs (the permission is the training app's, named by string)."""
    return user.is_authenticated and user.has_perm("training.start_trainingrun")
