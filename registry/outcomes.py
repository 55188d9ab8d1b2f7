"""What serving returns and raises, without torch: the modules that store, show or explain an answer import these
names in every process, while registry.serving (torch, the model holder) loads only where a model is scored.

Importing registry.serving to name its exception put torch into every Django process (``migrate``, beat, a
page-only web worker: 840 MB peak RSS after ``django.setup()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class NoProductionModel(RuntimeError):
    """No model version is registered with alias `production` yet."""

    def __init__(self) -> None:
        super().__init__(
            "No model is in production yet: predictions wait until the first model is trained and registered."
        )


@dataclass(frozen=True)
class PairPrediction:
    year: int
    low: int
    high: int
    version: int
    latency_ms: float
    details: dict = field(default_factory=dict)  # the API's "details" entry (ensemble.prediction_details)
    uncertainty: float | None = None  # nats; see serving.prediction_uncertainty()
