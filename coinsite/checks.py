"""Deployment checks of the project's own: the cache that throttles and the sign-in lockout count in must be shared.

Why: every limit (predictions/throttles.py) and the lockout (coinsite/lockout.py) count in Django's default cache.
The embedded default's cache is one process's memory, so each gunicorn worker counted alone: measured on two workers,
60 predictions a minute passed a limit of 30, and after 9 wrong passwords the right one was still accepted 3 times in
8. `manage.py check --deploy` reports such a cache under production settings (coinsite.E001), and gunicorn refuses to
start more than one worker with it (gunicorn.conf.py's post_worker_init calls `shared_cache_refusal`).
"""

from __future__ import annotations

import logging
import os

from django.conf import settings
from django.core.checks import Error, Tags, register

logger = logging.getLogger(__name__)

# Backends whose counts one process (or one host's folder) keeps to itself, or that keep no count at all.
PROCESS_LOCAL_BACKENDS = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
        "django.core.cache.backends.filebased.FileBasedCache",
    }
)
ALLOW_VARIABLE = "COINSITE_ALLOW_LOCAL_CACHE"
HINT = (
    "Set CACHE_URL to a cache every web process shares: redis://host:6379/1, or dbcache://coinsite_cache (after "
    "`manage.py createcachetable`, which the Procfile's release step runs). docs/deployment.md, 'Sign-in limits'."
)


def cache_is_process_local() -> bool:
    """Whether the default cache (where throttles and the lockout count) is private to one process or host."""
    return settings.CACHES["default"]["BACKEND"] in PROCESS_LOCAL_BACKENDS


def shared_cache_problem() -> str:
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    return (
        f"The cache is {backend}, private to each process: every web worker would count the throttles and the "
        "sign-in lockout alone (2 workers: twice the rates, and more than COINSITE_LOGIN_FAILURE_LIMIT guesses)."
    )


@register(Tags.security, deploy=True)
def shared_cache_check(app_configs, **kwargs) -> list[Error]:
    """coinsite.E001 under production settings (DEBUG off) with a per-process cache."""
    if settings.DEBUG or not cache_is_process_local():
        return []
    return [Error(shared_cache_problem(), hint=HINT, id="coinsite.E001")]


def shared_cache_refusal(*, workers: int) -> str | None:
    """Why a server of `workers` processes must not start (None: it may). One worker counts exactly, on its one
    host; more need the shared cache. COINSITE_ALLOW_LOCAL_CACHE=1 lets a trial start anyway (logged)."""
    if settings.DEBUG or workers <= 1 or not cache_is_process_local():
        return None
    if os.environ.get(ALLOW_VARIABLE) == "1":
        logger.warning(
            "%s allows %d workers a per-process cache: the limits hold per worker only", ALLOW_VARIABLE, workers
        )
        return None
    return f"Refusing to start {workers} workers: {shared_cache_problem()} {HINT}"
