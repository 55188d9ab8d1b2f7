"""Sign-in lockout: after COINSITE_LOGIN_FAILURE_LIMIT wrong passwords for one account, every sign-in to it (the
site, the admin, POST /api/token) is refused for COINSITE_LOGIN_LOCKOUT_SECONDS, even with the right password.

Why per account and in the cache: password guessing aims at accounts, from many addresses; the counter lives in the
shared cache (Redis when CACHE_URL names one), so every web process sees the same count. Attempts made while locked
are not counted, so a guesser cannot keep an account locked longer than one lockout after giving up. A successful
sign-in clears the count. Django's `user_login_failed` signal counts failures from any form or endpoint that calls
`authenticate(request=...)`.
"""

from __future__ import annotations

import hashlib
import math
import time

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.contrib.auth.views import LoginView, PasswordResetConfirmView
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpResponse

KEY_PREFIX = "login-failures:"


def _key(username: str) -> str:
    return KEY_PREFIX + hashlib.sha256(username.strip().lower().encode()).hexdigest()


def seconds_locked(username: str | None) -> int:
    """Seconds until this account may sign in again; 0 when it is not locked."""
    if not username:
        return 0
    record = cache.get(_key(username)) or {}
    until = record.get("locked_until", 0)
    return max(0, math.ceil(until - time.time()))


def locked_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return (
        f"Too many wrong passwords for this account: sign-in is locked for {minutes} more minute"
        f"{'s' if minutes != 1 else ''}. Try again later or reset your password."
    )


def failure_record(username: str) -> None:
    """Count one wrong password; the limit-th locks the account."""
    if seconds_locked(username):
        return
    key = _key(username)
    record = cache.get(key) or {"failures": 0}
    record["failures"] += 1
    lockout = settings.COINSITE_LOGIN_LOCKOUT_SECONDS
    if record["failures"] >= settings.COINSITE_LOGIN_FAILURE_LIMIT:
        record["locked_until"] = time.time() + lockout
    cache.set(key, record, timeout=lockout)


def failures_clear(username: str) -> None:
    cache.delete(_key(username))


class LockoutModelBackend(ModelBackend):
    """Django's password backend, refusing a locked account before its password is even checked."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        seconds = seconds_locked(username)
        if seconds:
            raise PermissionDenied(locked_message(seconds))
        return super().authenticate(request, username=username, password=password, **kwargs)


class LockoutFormMixin:
    """For AuthenticationForm and the admin's: a locked account gets the lockout message, not 'wrong password'."""

    def clean(self):
        seconds = seconds_locked(self.data.get("username"))
        if seconds:
            raise forms.ValidationError(locked_message(seconds), code="locked")
        return super().clean()


class LockoutAuthenticationForm(LockoutFormMixin, AuthenticationForm):
    pass


class LockoutAdminAuthenticationForm(LockoutFormMixin, AdminAuthenticationForm):
    pass


class LockoutLoginView(LoginView):
    """The site's sign-in page: a locked account is answered 429 Too Many Requests, with the message on the page."""

    authentication_form = LockoutAuthenticationForm
    redirect_authenticated_user = True

    def form_invalid(self, form) -> HttpResponse:
        locked = any(error.code == "locked" for error in form.errors.as_data().get("__all__", []))
        response = self.render_to_response(self.get_context_data(form=form, locked=locked))
        if locked:
            response.status_code = 429
        return response


@receiver(user_login_failed, dispatch_uid="coinsite.lockout.failed")
def _on_failure(sender, credentials: dict, request=None, **kwargs) -> None:
    username = credentials.get("username")
    if username:
        failure_record(username)


@receiver(user_logged_in, dispatch_uid="coinsite.lockout.success")
def _on_success(sender, request, user, **kwargs) -> None:
    failures_clear(user.get_username())


class LockoutPasswordResetConfirmView(PasswordResetConfirmView):
    """A password set through the emailed link also ends the account's lockout: the owner proved who they are."""

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        failures_clear(form.user.get_username())
        return response
