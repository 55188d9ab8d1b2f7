"""Error reporting to Sentry, turned on by SENTRY_DSN (coinsite/settings.py).

Called from the settings, so web processes and Celery workers (which import the same settings) report alike: the
Django integration names the view and request of an error, the Celery one the task and its arguments' shapes.
"""

from __future__ import annotations

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration


def sentry_init(*, dsn: str, environment: str, traces_sample_rate: float = 0.0) -> None:
    """Start the Sentry client. No personal data (user ids, addresses, cookies, request bodies: coin photos are
    the collectors' own) and no performance traces by default: a trace per request would cost every prediction
    for a feature nobody asked for; a deployment opts in with a sample rate."""
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
        max_request_body_size="never",
    )
