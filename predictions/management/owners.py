"""The owner of coins that a command stores (make_demo_coins, import_coins)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import CommandError


def command_owner(username: str | None, *, default: str) -> AbstractBaseUser:
    """The user named by ``--owner``, or the command's ``default`` user, created without a usable password.

    An explicit --owner must exist: a typo must not create an account that then owns the coins. The default user
    is created on first use so that a fresh install can run the command at once.
    """
    User = get_user_model()
    if username:
        try:
            return User.objects.get(username=username)
        except User.DoesNotExist as error:
            raise CommandError(f"No user named {username!r}; create it first or leave --owner out.") from error
    user, created = User.objects.get_or_create(username=default)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user
