"""Prometheus counter of stored predictions, by model version and outcome; exported by /metrics (coinsite/metrics.py).

Counted where a prediction row is written (predictions.inference.prediction_store), and only once its transaction
commits: a batch rolled back by a failed photo or a database error wrote nothing and counts nothing. Under gunicorn
the counter lives in prometheus_client's multiprocess files, so /metrics sums it over every worker process.
"""

from __future__ import annotations

from django.db import transaction
from prometheus_client import Counter

PREDICTIONS = Counter(
    "coinsite_predictions",
    "Predictions stored, by model version and outcome (year, not_a_coin, unreadable).",
    ["version", "outcome"],
)


def prediction_count_on_commit(*, version: int | str, rejected: str) -> None:
    """Count one prediction of `version` once the current transaction commits (at once outside one).

    `rejected` is the Prediction's reason ("not_a_coin", "unreadable") or "" for an answered year. The label is
    looked up in the callback, so a rolled-back prediction does not even create an empty series.
    """
    outcome = rejected or "year"
    transaction.on_commit(lambda: PREDICTIONS.labels(version=str(version), outcome=outcome).inc())
