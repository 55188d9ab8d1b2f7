"""The gate: a version that does not beat the constant baseline never goes to Production automatically, not even the
first one (DESIGN.md). A unit test of recording.result_record, the one place both kinds of run decide in, with
MLflow, the comparison and the held-out answers stubbed: it needs no training, so it runs in `make test-fast`. The
slow learning-loop tests (tests/training/test_learning_loop.py) show the same with real training."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from training.ml.kfold import FitResult
from training.models import TrainingRun
from training.services import recording

FIRST_VERSION = 1


@dataclass
class FakeTracker:
    """What result_record asks of a TrainingTracker; records how the version was registered."""

    run_id: str = "run-under-test"
    production: int | None = None
    registered: list[dict] = field(default_factory=list)

    def log_result(self, result, manifest):
        return {"summary": {"mae": result.metrics["mae"], "baseline_mae": result.baseline_metrics["mae"]}}

    def log_model(self, result) -> None:
        pass

    def register(self, name: str, *, serve_if_first: bool = True) -> int:
        self.registered.append({"name": name, "serve_if_first": serve_if_first})
        return FIRST_VERSION + 1 if self.production else FIRST_VERSION


@dataclass
class FakeResult:
    """A fit's result as result_record reads it: its cross-validated MAE beside the constant baseline's."""

    mae: float
    baseline_mae: float

    @property
    def metrics(self) -> dict:
        return {"mae": self.mae}

    @property
    def baseline_metrics(self) -> dict:
        return {"mae": self.baseline_mae}

    beats_baseline = FitResult.beats_baseline  # the real rule, read from metrics and baseline_metrics

    def summary(self) -> str:
        return f"MAE {self.mae} against the constant baseline's {self.baseline_mae}"


@pytest.fixture
def aliases(monkeypatch) -> list[tuple]:
    """MLflow stubbed: the aliases result_record sets are recorded; the comparison on the evaluation set says the
    candidate is better (as it does for any first version: there is nothing to compare with)."""
    moved: list[tuple] = []
    tracking = SimpleNamespace(
        log_evaluation=lambda *args, **kwargs: None,
        set_alias=lambda name, alias, version: moved.append((alias, version)),
    )
    monkeypatch.setattr(recording.gateway, "tracking", lambda: tracking)
    monkeypatch.setattr(recording, "out_of_fold_store", lambda **kwargs: None)
    monkeypatch.setattr(recording, "coins_corrected_since", lambda **kwargs: [])

    def compare(*, candidate, production, evaluation, corrected_coin_ids=()):
        reason = "first version: nothing to compare with" if production is None else "better by the margin"
        return {"candidate": {"mae": 1.0}, "production": None, "corrected": {"count": 0}, "better": True,
                "verdict": "recommended", "reason": reason}  # fmt: skip

    monkeypatch.setattr(recording, "model_version_compare", compare)
    return moved


def decide(result: FakeResult, *, production: int | None) -> tuple[recording.RunDecision, FakeTracker]:
    tracker = FakeTracker(production=production)
    decision = recording.result_record(
        tracker,
        run_id=1,
        result=result,
        train_samples=[],
        training_set=SimpleNamespace(manifest=[]),
        evaluation_set=SimpleNamespace(pk=2),
        production=production,
        beat=lambda **kwargs: None,
    )
    return decision, tracker


@pytest.mark.parametrize("mae", [83.0, 90.0], ids=["equal", "worse"])
def test_a_first_version_that_does_not_beat_the_constant_baseline_is_not_put_in_production(aliases, mae):
    # given no Production yet, and a run whose cross-validated MAE is not below the constant baseline's (83 years)
    result = FakeResult(mae=mae, baseline_mae=83.0)

    # when the run is recorded and decided
    decision, tracker = decide(result, production=None)

    # then it is registered without the first version's claim on Production, and rejected, saying why
    assert [call["serve_if_first"] for call in tracker.registered] == [False]
    assert decision.verdict == TrainingRun.Verdict.REJECTED
    assert decision.comparison["better"] is False
    assert "does not beat the constant baseline" in decision.comparison["reason"]
    assert aliases == []


def test_a_later_version_that_does_not_beat_the_baseline_is_not_staged_even_when_it_beats_production(aliases):
    decision, _ = decide(FakeResult(mae=90.0, baseline_mae=83.0), production=FIRST_VERSION)

    assert decision.verdict == TrainingRun.Verdict.REJECTED
    assert aliases == [], "no staging alias: auto-promotion would take it from there"


def test_a_first_version_that_beats_the_baseline_goes_to_production(aliases):
    # the other side of the gate: the same path lets a good first version serve
    decision, tracker = decide(FakeResult(mae=6.7, baseline_mae=83.0), production=None)

    assert tracker.registered[0]["serve_if_first"] is True
    assert decision.verdict == TrainingRun.Verdict.PROMOTED
