"""Sign-in limits: per address, per account, and the lockout.

Three refusals, each answered before any password is hashed (a PBKDF2 check costs ~0.5 s of CPU, and an unknown
user's costs as much, so that timing says nothing about which accounts exist):
- per client address: COINSITE_THROTTLE_SIGNIN sign-ins (site and admin; POST /api/token has its own `token` scope);
- per account: COINSITE_THROTTLE_SIGNIN_ACCOUNT attempts on one username, from any address (site, admin, API);
- the lockout: after COINSITE_LOGIN_FAILURE_LIMIT wrong passwords for one account, every sign-in to it is refused
  for COINSITE_LOGIN_LOCKOUT_SECONDS, even with the right password. A trade-off (docs/deployment.md, "Sign-in
  limits"): it stops guessing at any account from any number of addresses, and it lets anyone who knows a username
  keep that user out for 15 minutes with 5 requests.

Why the lockout reserves a check before it is made: counting failures after the check let 40 concurrent wrong
guesses make 9 password checks across two workers (each read a count below the limit before any wrote). Here a
password check is made only after a slot is reserved under a cache lock (predictions.throttles.cache_lock: cache.add,
atomic on every backend), failures plus checks in flight never exceed the limit, so at most 5 checks are ever made
before the lock. Attempts refused while locked are not counted, so a guesser cannot keep an account locked longer
than one lockout after giving up. A successful sign-in clears the count. Every count lives in the shared cache
(CACHE_URL): production refuses to start with one per process (coinsite.checks).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, field

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import LoginView, PasswordResetConfirmView
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpResponse

from predictions.throttles import address_ident, cache_lock, page_refusal

logger = logging.getLogger(__name__)

KEY_PREFIX = "login-failures:"
# A check in flight longer than this is taken for one whose process died (a PBKDF2 check takes about 0.5 s).
CHECK_STALE_SECONDS = 60.0
BUSY_SECONDS = 1  # Retry-After when the account's remaining tries are all being checked right now


def _key(username: str) -> str:
    return KEY_PREFIX + account_ident(username)


def account_ident(username: str) -> str:
    """The account's key in the cache, the same however the name is typed (case, surrounding spaces)."""
    return "acct" + hashlib.sha256(username.strip().lower().encode()).hexdigest()


@dataclass
class Attempts:
    """An account's sign-in state in the cache: failures so far, the start times of checks in flight, the lock."""

    failures: int = 0
    checking: list[float] = field(default_factory=list)
    locked_until: float = 0.0

    @classmethod
    def read(cls, key: str, now: float) -> Attempts:
        stored = cache.get(key)
        record = cls(**stored) if isinstance(stored, dict) else cls()
        if record.locked_until and record.locked_until <= now:  # a lock that ran out starts the count afresh
            return cls()
        record.checking = [started for started in record.checking if started > now - CHECK_STALE_SECONDS]
        return record

    def write(self, key: str) -> None:
        value = {"failures": self.failures, "checking": self.checking, "locked_until": self.locked_until}
        cache.set(key, value, timeout=settings.COINSITE_LOGIN_LOCKOUT_SECONDS)


def seconds_locked(username: str | None) -> int:
    """Seconds until this account may sign in again; 0 when it is not locked."""
    if not username:
        return 0
    now = time.time()
    return max(0, math.ceil(Attempts.read(_key(username), now).locked_until - now))


def locked_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return (
        f"Too many wrong passwords for this account: sign-in is locked for {minutes} more minute"
        f"{'s' if minutes != 1 else ''}. Try again later or reset your password."
    )


def busy_message() -> str:
    return "Too many sign-in attempts for this account at once: try again in a few seconds."


def check_reserve(username: str) -> tuple[str, int] | None:
    """Reserve one password check for this account before it is made; None when it may go ahead, else the refusal
    (message, seconds to wait): the account is locked, or its remaining tries are all being checked right now."""
    key, now = _key(username), time.time()
    with cache_lock(cache, key) as held:
        if not held:
            return busy_message(), BUSY_SECONDS
        record = Attempts.read(key, now)
        if record.locked_until > now:
            seconds = math.ceil(record.locked_until - now)
            return locked_message(seconds), seconds
        if record.failures + len(record.checking) >= settings.COINSITE_LOGIN_FAILURE_LIMIT:
            return busy_message(), BUSY_SECONDS
        record.checking.append(now)
        record.write(key)
    return None


def check_settle(username: str, *, started: float | None = None, success: bool) -> None:
    """Release a reserved check: a success clears the account's count, a failure counts, and the limit-th locks."""
    key, now = _key(username), time.time()
    with cache_lock(cache, key, wait_seconds=10) as held:
        if not held:  # the cache is too slow to lock even in 10 s: count anyway rather than lose the failure
            logger.warning("sign-in lockout: counted without the lock for %s", key)
        if success:
            cache.delete(key)
            return
        record = Attempts.read(key, now)
        if record.checking:  # this check's own slot: the one reserved nearest its start
            record.checking.remove(min(record.checking, key=lambda moment: abs(moment - (started or now))))
        record.failures += 1
        if record.failures >= settings.COINSITE_LOGIN_FAILURE_LIMIT:
            record.locked_until = now + settings.COINSITE_LOGIN_LOCKOUT_SECONDS
        record.write(key)


def failures_clear(username: str) -> None:
    cache.delete(_key(username))


def signin_refusal(request, username: str | None, *, per_address: bool = True) -> tuple[str, int] | None:
    """The cheap refusals, before a password is looked at: (message, Retry-After seconds), or None. Per address
    (pages; the API counts its own `token` scope), per account, then the lockout. Each throttle counts the call."""
    if per_address:
        refusal = page_refusal(request, "signin", ident=address_ident(request))
        if refusal:
            return refusal
    if not username:
        return None
    refusal = page_refusal(request, "signin_account", ident=account_ident(username))
    if refusal:
        return refusal
    seconds = seconds_locked(username)
    return (locked_message(seconds), seconds) if seconds else None


class LockoutModelBackend(ModelBackend):
    """Django's password backend, making a password check only after a slot is reserved for it (check_reserve):
    a locked account, or one whose remaining tries are all being checked, is refused before its password is hashed.
    The refusal is left on the request (`signin_refused`) for the form or API to answer 429 with."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        refusal = check_reserve(username)
        if refusal:
            if request is not None:
                request.signin_refused = refusal
            raise PermissionDenied(refusal[0])
        started = time.time()
        user = None
        try:
            user = super().authenticate(request, username=username, password=password, **kwargs)
        finally:
            check_settle(username, started=started, success=user is not None)
        return user


class LockoutFormMixin:
    """For AuthenticationForm and the admin's: a refused sign-in (address, account, lockout) gets its own message,
    not 'wrong password', and no password is checked."""

    def clean(self):
        refusal = signin_refusal(self.request, self.data.get("username"))
        if refusal:
            self.refusal = refusal
            raise forms.ValidationError(refusal[0], code="locked")
        try:
            return super().clean()
        except forms.ValidationError:
            refusal = getattr(self.request, "signin_refused", None)
            if refusal:  # refused by the backend: locked or busy meanwhile (concurrent tries)
                self.refusal = refusal
                raise forms.ValidationError(refusal[0], code="locked") from None
            raise


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
            response["Retry-After"] = str(form.refusal[1])
        return response


@receiver(user_logged_in, dispatch_uid="coinsite.lockout.success")
def _on_success(sender, request, user, **kwargs) -> None:
    failures_clear(user.get_username())


class LockoutPasswordResetConfirmView(PasswordResetConfirmView):
    """A password set through the emailed link also ends the account's lockout: the owner proved who they are."""

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        failures_clear(form.user.get_username())
        return response
