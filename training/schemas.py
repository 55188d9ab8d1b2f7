"""Typed shapes of the JSON the training side stores: TrainingRun.metrics, .comparison, .progress and the
ModelVersion mirror's metrics.

The JSON columns stay JSON (old rows must still load); these dataclasses say which keys the writers really put there,
so readers (the admin's presenters) stop guessing. Each `from_dict` reads only keys a writer produces; a row written
before a key existed, or a run that failed half-way, gives None for what it lacks instead of an error.

Writers, and the keys they produce:
- `TrainingRun.metrics`: training.services.recording `run_metrics` = the flat keys of
  `training.ml.tracking.runs.summary_metrics` (mae, mae_std, mse, r2, within_5, within_10 as means over folds,
  baseline_<name>, interval_coverage, interval_halfwidth, fold_<k>_<name>) merged with `TrainingTracker.log_result`'s
  summary ("folds": a list of per-fold `regression_metrics`, "interval": {level, halfwidth, coverage, ...},
  "baseline", "mae_by_decade" ...).
- `ModelVersion.metrics`: the MLflow run's flat metrics (registry.services `model_version_mirror`, from
  `training.ml.tracking.version_info`), or after a training run its numeric top-level keys plus "folds".
- `TrainingRun.comparison`: training.services.comparison `model_version_compare`; the same keys plus "movers" from
  `model_versions_compare` (any two versions, not stored: the compare page's).
- `TrainingRun.progress`: training.services.runs `_RunHooks` (fold, folds, epoch, epochs, stage, val_mae).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

# fold_<k>_<metric>, the per-fold keys summary_metrics logs on the MLflow parent run (k from 1).
_FLAT_FOLD_KEY = re.compile(r"^fold_(\d+)_(\w+)$")


def _float(value: Any) -> float | None:
    """A finite number as float, else None: JSON null, a string, a bool (beats_baseline is not a metric) or a NaN
    that an old SQLite row kept (PostgreSQL's jsonb cannot hold one; the writers store None since)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# The readers of the number fields, by the field's annotation (a string: this module postpones annotations).
_NUMBER_READERS = {"float | None": _float, "int | None": _int}


def _numbers(cls: type, data: Mapping[str, Any], *, besides: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``float | None`` and ``int | None`` fields of the dataclass ``cls``, each read from the key of its own
    name, the ones in ``besides`` left to the caller: the shapes below store their numbers under their field names."""
    return {
        item.name: _NUMBER_READERS[item.type](data.get(item.name))
        for item in fields(cls)
        if item.type in _NUMBER_READERS and item.name not in besides
    }


@dataclass(frozen=True)
class FoldMetrics:
    """One fold of a K-fold run, scored on the coins it held out (shares as fractions 0..1)."""

    fold: int
    mae: float | None = None
    mse: float | None = None
    r2: float | None = None
    within_5: float | None = None
    within_10: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, fold: int) -> FoldMetrics:
        """One entry of metrics["folds"] (`regression_metrics` of the fold; it carries no fold number of its own)."""
        return cls(fold=fold, **_numbers(cls, data))


def _folds(data: Mapping[str, Any]) -> list[FoldMetrics]:
    """The "folds" list when stored; else the flat fold_<k>_<name> keys (a version mirrored from MLflow alone)."""
    rows = data.get("folds")
    if isinstance(rows, list) and rows and all(isinstance(row, Mapping) for row in rows):
        return [FoldMetrics.from_dict(row, fold=index) for index, row in enumerate(rows, start=1)]
    flat: dict[int, dict[str, Any]] = {}
    for key, value in data.items():
        match = _FLAT_FOLD_KEY.match(str(key))
        if match:
            flat.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [FoldMetrics.from_dict(flat[fold], fold=fold) for fold in sorted(flat)]


@dataclass(frozen=True)
class RunMetrics:
    """Cross-validated numbers of a run or a version: means over folds, the spread, the constant baseline, the
    calibrated interval and the folds themselves (shares and coverage as fractions 0..1)."""

    mae: float | None = None
    mae_std: float | None = None
    mse: float | None = None
    r2: float | None = None
    within_5: float | None = None
    within_10: float | None = None
    baseline_mae: float | None = None
    interval_coverage: float | None = None
    interval_halfwidth: float | None = None
    interval_level: float | None = None
    # the date reader: 1.0 when the version serves its fold models averaged (training.ml.soup), 0.0 when it serves
    # their ensemble; with both ways' exact share on the run's holdout (None for runs that did not compare them)
    soup_served: float | None = None
    soup_holdout_exact: float | None = None
    folds_ensemble_holdout_exact: float | None = None
    # the date reader's coin head, refitted against the curators' non-coins (training.ml.coin_head): how many the
    # run was given, trained on and held out for the calibration, and the head's weighted loss before and after
    curator_negatives: float | None = None
    curator_negatives_trained: float | None = None
    curator_negatives_held_out: float | None = None
    coin_head_loss_before: float | None = None
    coin_head_loss: float | None = None
    folds: list[FoldMetrics] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RunMetrics:
        """TrainingRun.metrics or ModelVersion.metrics. The level of the interval is only in the nested "interval"
        (log_result); everything else is read from the flat keys both columns carry."""
        data = _mapping(data)
        return cls(
            **_numbers(cls, data, besides=("interval_level",)),
            interval_level=_float(_mapping(data.get("interval")).get("level")),
            folds=_folds(data),
        )

    def or_else(self, other: RunMetrics) -> RunMetrics:
        """These numbers, with what they lack taken from `other` (a version: its run's record first, the MLflow
        copy on the mirror row after it)."""
        values = {}
        for item in fields(self):
            mine = getattr(self, item.name)
            values[item.name] = mine if mine not in (None, []) else getattr(other, item.name)
        return RunMetrics(**values)

    @property
    def mae_over_baseline(self) -> float | None:
        """Model MAE / constant-baseline MAE: under 1 means the model learned something the median year does not."""
        if self.mae is None or not self.baseline_mae:
            return None
        return self.mae / self.baseline_mae


@dataclass(frozen=True)
class ComparisonSide:
    """One model scored on the evaluation set through the serving path (`_compare_side`)."""

    version: int | None = None
    count: int | None = None
    mae: float | None = None
    mse: float | None = None
    r2: float | None = None
    within_5: float | None = None
    within_10: float | None = None
    interval_coverage: float | None = None
    mae_by_decade: dict[str, float | None] = field(default_factory=dict)  # "1870" -> MAE in years
    decade_counts: dict[str, int | None] = field(default_factory=dict)  # "1870" -> coins

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ComparisonSide | None:
        """None when the side was not evaluated (the production side of a first version is stored as null)."""
        if not isinstance(data, Mapping):
            return None
        return cls(
            **_numbers(cls, data),
            mae_by_decade={str(k): _float(v) for k, v in _mapping(data.get("mae_by_decade")).items()},
            decade_counts={str(k): _int(v) for k, v in _mapping(data.get("decade_counts")).items()},
        )

    def metric(self, name: str) -> float | None:
        """One of the compared metrics by name (mae, mse, r2, within_5, within_10)."""
        return getattr(self, name)


@dataclass(frozen=True)
class CorrectedMetrics:
    """Both models' MAE on the coins curators corrected since Production was trained."""

    count: int | None = None
    candidate_mae: float | None = None
    production_mae: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CorrectedMetrics | None:
        if not isinstance(data, Mapping) or not data:
            return None
        return cls(**_numbers(cls, data))


@dataclass(frozen=True)
class Comparison:
    """Candidate against Production on the same held-out evaluation coins (`model_version_compare`)."""

    candidate: ComparisonSide | None = None
    production: ComparisonSide | None = None
    corrected: CorrectedMetrics | None = None
    evaluation_dataset: int | None = None
    evaluation_count: int | None = None
    margin: float | None = None
    better: bool | None = None
    delta_mae: float | None = None
    reason: str = ""
    verdict: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Comparison | None:
        """None when the run stored no comparison (it failed before evaluation, or was cancelled): {} in the column."""
        if not isinstance(data, Mapping) or not data:
            return None
        better = data.get("better")
        return cls(
            candidate=ComparisonSide.from_dict(data.get("candidate")),
            production=ComparisonSide.from_dict(data.get("production")),
            corrected=CorrectedMetrics.from_dict(data.get("corrected")),
            **_numbers(cls, data),
            better=better if isinstance(better, bool) else None,
            reason=str(data.get("reason") or ""),
            verdict=str(data.get("verdict") or ""),
        )


@dataclass(frozen=True)
class Mover:
    """One evaluation coin whose predicted year differs between the two versions of a VersionPair."""

    coin_id: int
    year: int  # the frozen (verified) year
    base: float  # version A's answer
    other: float  # version B's answer
    move: float  # other - base


@dataclass(frozen=True)
class VersionPair:
    """Any two versions on the same evaluation coins (`model_versions_compare`): the Comparison (its `production`
    side is version A, `candidate` version B) and the coins whose answer moved most."""

    comparison: Comparison
    movers: tuple[Mover, ...] = ()

    @property
    def base(self) -> int | None:
        return self.comparison.production.version if self.comparison.production else None

    @property
    def other(self) -> int | None:
        return self.comparison.candidate.version if self.comparison.candidate else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> VersionPair | None:
        comparison = Comparison.from_dict(data)
        if comparison is None:
            return None
        movers = tuple(
            Mover(
                coin_id=int(row["coin_id"]),
                year=int(row["year"]),
                base=float(row["base"]),
                other=float(row["other"]),
                move=float(row["move"]),
            )
            for row in data.get("movers") or ()
            if isinstance(row, Mapping)
        )
        return cls(comparison=comparison, movers=movers)


@dataclass(frozen=True)
class RunProgress:
    """Where a run is: fold x of y, epoch x of y (1-based), the stage outside the epochs, the last validation MAE."""

    fold: int | None = None
    folds: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    stage: str = ""
    val_mae: float | None = None
    folds_done: int | None = None  # fold-parallel runs: folds finished, and epochs trained over all folds
    epochs_done: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RunProgress:
        data = _mapping(data)
        return cls(**_numbers(cls, data), stage=str(data.get("stage") or ""))
