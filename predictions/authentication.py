"""API tokens: DRF's authtoken Token with an optional lifetime, how one is issued and how it is revoked.

COINSITE_TOKEN_TTL_HOURS = 0 (the default): a token works until it is revoked (DELETE /api/token, or the admin).
Above 0: a token older than that many hours is refused with 401, and POST /api/token replaces it with a new one. The
age counts from the token's creation (Token.created), not from its last use: a leaked token stops working at a
known time, whatever its thief does with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

EXPIRED = "The token expired; get a new one at POST /api/token."


def token_lifetime() -> timedelta | None:
    """How long a token works after it is created; None when tokens never expire."""
    hours = settings.COINSITE_TOKEN_TTL_HOURS
    return timedelta(hours=hours) if hours and hours > 0 else None


def token_expired(token: Token, *, now: datetime | None = None) -> bool:
    lifetime = token_lifetime()
    return lifetime is not None and token.created + lifetime <= (now or timezone.now())


class ExpiringTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, refused with 401 once the token is older than COINSITE_TOKEN_TTL_HOURS."""

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token_expired(token):
            raise exceptions.AuthenticationFailed(EXPIRED)
        return user, token


@transaction.atomic
def token_issue(*, user: AbstractBaseUser) -> Token:
    """The user's token: the one they have, or a new one when they have none or theirs expired.

    One token per user (DRF's model): asking again from another client gives the same key, so revoking it signs out
    every client of that user."""
    token = Token.objects.select_for_update().filter(user=user).first()
    if token is not None and token_expired(token):
        token.delete()
        token = None
    if token is None:
        token, _created = Token.objects.get_or_create(user=user)  # a concurrent request may have made it meanwhile
    return token


def token_revoke(*, user: AbstractBaseUser) -> bool:
    """Delete the user's token (every client using it must get a new one); False when there was none."""
    deleted, _by_model = Token.objects.filter(user=user).delete()
    return bool(deleted)
