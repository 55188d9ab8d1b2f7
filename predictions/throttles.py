"""Abuse limits of the API: DRF throttles, counted in the shared cache, before the view does any work.

A view names a scope per HTTP method (`throttle_scopes = {"POST": "predict"}`); the rate of each scope is
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (set from COINSITE_THROTTLE_* in settings). DRF checks throttles in
APIView.initial(), after authentication and permissions and before the handler parses the body, so every
authenticated call counts, a refused one (bad JSON, a bad photo) as much as a successful one: a client cannot make
the server read and decode photos faster than its rate by sending broken ones. Calls refused with 429 do not count.

Why not DRF's ScopedRateThrottle as it is:
- it reads each rate once, at import (SimpleRateThrottle.THROTTLE_RATES), so a changed setting is never seen;
- its history is read and written back without a lock, so concurrent calls of one client (threads of a gunicorn
  worker, or workers sharing Redis) read the same history and each write back their own: 8 threads making 10 calls
  each against a limit of 30 a minute got 62 to 80 of their 80 calls served on Redis. Here the read-modify-write
  holds a short lock made with cache.add(), atomic on every Django backend (local memory, Redis): exactly 30;
- its Retry-After is the wait truncated to whole seconds ("0" for 0.7 s); here it is rounded up.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from django.core.cache import cache as default_cache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)

PERIODS = {"s": ("second", 1), "m": ("minute", 60), "h": ("hour", 3600), "d": ("day", 86400)}
LOCK_SECONDS = 5  # a lock left by a killed process frees itself after this long
LOCK_WAIT_SECONDS = 2.0  # the count takes about a millisecond under the lock; a call that waits longer is refused


def parse_rate(rate: str | None) -> tuple[int | None, int | None]:
    """Parse "30/min" to (30, 60). The period is s/sec/second, m/min/minute, h/hour or d/day (DRF's own format)."""
    if rate is None:
        return (None, None)
    count, _, period = rate.partition("/")
    if not count.isdigit() or not period or period[0] not in PERIODS:
        raise ValueError(f"not a throttle rate: {rate!r} (write it as e.g. 30/min, 10/second, 1000/day)")
    return (int(count), PERIODS[period[0]][1])


def describe_rate(rate: str) -> str:
    """Describe "30/min" as "30 per minute", for the 429 message."""
    count, duration = parse_rate(rate)
    name = next(name for name, seconds in PERIODS.values() if seconds == duration)
    return f"{count} per {name}"


@contextmanager
def cache_lock(cache, key: str, *, wait_seconds: float = LOCK_WAIT_SECONDS) -> Iterator[bool]:
    """Hold `key`'s lock (cache.add is atomic on every Django backend: local memory, Redis, Memcached, the database
    table), waiting up to `wait_seconds`; yields whether it was got. The throttles and the sign-in lockout
    (coinsite.lockout) count under it, so a read-modify-write of a count is never interleaved with another's."""
    lock = f"{key}_lock"
    deadline = time.monotonic() + wait_seconds
    acquired = cache.add(lock, 1, LOCK_SECONDS)
    while not acquired and time.monotonic() < deadline:
        time.sleep(0.002)
        acquired = cache.add(lock, 1, LOCK_SECONDS)
    try:
        yield acquired
    finally:
        if acquired:
            cache.delete(lock)


def scope_of(view: Any, method: str) -> str | None:
    """The view's throttle scope for this method, or None when the method is not throttled."""
    return getattr(view, "throttle_scopes", {}).get(method.upper())


class ScopedThrottle(SimpleRateThrottle):
    """At most N calls per period for each client and scope, N and the period read from the settings per request.

    The client is the user for an authenticated request and the address for an anonymous one (DRF's get_ident:
    REMOTE_ADDR, or X-Forwarded-For as REST_FRAMEWORK's NUM_PROXIES says)."""

    cache = default_cache
    cache_format = "throttle_%(scope)s_%(ident)s"

    def __init__(self) -> None:  # the scope, hence the rate, is known only in allow_request
        self.scope = None
        self.rate = None

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def parse_rate(self, rate: str | None) -> tuple[int | None, int | None]:
        return parse_rate(rate)

    def ident(self, request) -> str:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return f"user{user.pk}"
        return f"ip{self.get_ident(request)}"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.ident(request)}

    def allow_request(self, request, view) -> bool:
        self.scope = scope_of(view, request.method)
        self.rate = self.get_rate() if self.scope else None
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, view)
        self.history, self.now = [], self.timer()
        try:
            with cache_lock(self.cache, self.key) as acquired:
                # Not acquired: this client's own concurrent calls held the lock all along. Refused, not counted
                # unlocked (counting them anyway let 34 of 80 calls through under load, with a limit of 30).
                return self._count() if acquired else False
        except Exception:  # the cache is down: serve rather than fail every call; the log says why limits are off
            logger.exception("throttle cache unavailable; %s not counted", self.key)
            return True

    def _count(self) -> bool:
        """DRF's sliding window: the times of the calls of the last `duration` seconds, newest first."""
        self.now = self.timer()
        self.history = [moment for moment in self.cache.get(self.key, []) if moment > self.now - self.duration]
        if len(self.history) >= self.num_requests:
            return False
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)
        return True

    def wait(self) -> float:
        """Seconds until the oldest call of the window leaves it, i.e. until one more call is allowed (1 s when the
        call was refused for want of the lock)."""
        if not self.history:
            return 1.0
        return max(0.0, self.history[-1] + self.duration - self.now)

    def refusal(self, method: str, path: str) -> str:
        """The 429 message: the limit that was hit and when to retry."""
        seconds = retry_after(self.wait())
        unit = "second" if seconds == 1 else "seconds"
        return (
            f"Too many requests: at most {describe_rate(self.rate)} to {method} {path}; retry in {seconds} {unit} "
            "(the Retry-After header says the same)."
        )


class ClientAddressThrottle(ScopedThrottle):
    """Counted per address whoever the caller is: the token endpoint is where passwords are guessed, and a guesser
    has no account of their own to be counted under."""

    def ident(self, request) -> str:
        return f"ip{self.get_ident(request)}"


def retry_after(wait: float) -> int:
    """Whole seconds for Retry-After, rounded up (and at least 1, so a client that honours it is let through)."""
    return max(1, math.ceil(wait))


class KeyedThrottle(ScopedThrottle):
    """Counted under a key the caller names: an account's name for sign-in, an e-mail address for password reset.
    Guessing aims at one account from many addresses, and reset mail at one mailbox, so the address alone is not
    enough."""

    def __init__(self, ident: str) -> None:
        super().__init__()
        self.named_ident = ident

    def ident(self, request) -> str:
        return self.named_ident


def address_ident(request) -> str:
    """The key of the client's address (REMOTE_ADDR, or X-Forwarded-For as COINSITE_NUM_PROXIES says)."""
    return ClientAddressThrottle().ident(request)


def page_refusal(request, scope: str, *, ident: str | None = None) -> tuple[str, int] | None:
    """The throttle of a scope, for a page (a plain Django view): None when the call is allowed, else the 429
    message and the Retry-After seconds. Counted under the same key as the API's scope, so the upload page and
    POST /api/coins/ share one limit per collector. `ident` counts under another key (an address, an account)."""
    throttle = ScopedThrottle() if ident is None else KeyedThrottle(ident)
    if throttle.allow_request(request, SimpleNamespace(throttle_scopes={request.method.upper(): scope})):
        return None
    return throttle.refusal(request.method, request.path), retry_after(throttle.wait())
