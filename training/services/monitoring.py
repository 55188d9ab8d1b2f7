"""How each model version does on the coins it really served: the owners' monitoring page.

Cross-validation says how a version did on the labels it was trained from; what owners need to know is how it does
now, on new photos. Two signals, both by the week the version served:

- live accuracy: its predictions whose coin a curator verified AFTER the prediction was made (so the answer could
  not have seen the label): MAE, the share of exact years and how often the verified year fell inside the
  prediction's interval; beside it, the share of photos it rejected (not a coin / unreadable);
- input drift: the photos served that week against the photos the version was trained on (brightness, contrast,
  colour, sharpness: training.services.photo_stats), as a standardised mean difference per statistic; drift shows
  at once, while the labels that reveal an accuracy drop come days later.

Which version served when (the Promotion audit) goes beside the figures. Figures are typed dataclasses; the admin's
presenters draw them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from registry.models import ModelVersion, Promotion
from training.schemas import RunMetrics

from ..selectors import (
    coins_served_by_week,
    model_version_training_coins,
    model_versions_serving_since,
    predictions_verified_after,
    predictions_weekly_counts,
    promotions_with_end,
    week_of,
)
from .photo_stats import SMD_LARGE, SMD_NOTABLE, FeatureDrift, coins_photo_stats, photo_drift, sample_evenly

# Defaults of the settings that size the page (read with getattr: none of them is required).
WEEKS = 12  # MONITORING_WEEKS: how far back the page looks
SAMPLE_PER_WEEK = 200  # MONITORING_SAMPLE_PER_WEEK: photos measured per version and week for the drift figure
TRAINING_SAMPLE = 400  # MONITORING_TRAINING_SAMPLE: training coins measured per version
STATS_SECONDS = 3.0  # MONITORING_STATS_SECONDS: time one report may spend measuring photos (a refresh: its own)
MAX_VERSIONS = 8  # MONITORING_VERSIONS: newest versions shown


@dataclass(frozen=True)
class Accuracy:
    """Live accuracy of one version over one week (or the whole window: `week` None). Rates are fractions 0..1."""

    week: date | None
    predictions: int  # predictions the version made (answered or rejected)
    rejected: int  # of which it gave no year: not a coin, or the date unreadable
    verified: int  # answered predictions whose coin a curator verified afterwards
    mae: float | None = None  # mean |predicted - verified| in years, over `verified`
    exact_rate: float | None = None  # share of `verified` answered with the verified year itself
    coverage: float | None = None  # share of `verified` whose verified year lies in the prediction's interval

    @property
    def rejection_rate(self) -> float | None:
        return self.rejected / self.predictions if self.predictions else None


@dataclass(frozen=True)
class WeekDrift:
    """The photos one version served in one week against its training photos."""

    week: date
    served: int  # distinct coins the version predicted that week
    sampled: int  # of which measured and compared (at most the sample size)
    training_sampled: int  # training photos compared with
    features: tuple[FeatureDrift, ...] = ()

    @property
    def worst(self) -> FeatureDrift | None:
        """The statistic that moved most (largest |SMD|)."""
        return max(self.features, key=lambda item: abs(item.smd), default=None)

    @property
    def score(self) -> float | None:
        """The drift figure: the largest |SMD| over the statistics (0: the same photos; 0.5 and more: other ones)."""
        worst = self.worst
        return abs(worst.smd) if worst is not None else None

    @property
    def noise(self) -> float | None:
        """The |SMD| two samples of these sizes from the same photos stay under: 2.5 standard errors of an SMD,
        2.5 * sqrt(1/n + 1/m) (~99 %). With 30 photos a week against 40 training ones that is 0.60, above the rule
        of thumb's 0.25: the largest of the seven statistics of an undrifted week measured 0.35 in the tests."""
        if self.sampled < 2 or self.training_sampled < 2:
            return None
        return 2.5 * math.sqrt(1 / self.sampled + 1 / self.training_sampled)

    @property
    def level(self) -> str:
        """ "large", "notable", "none", or "" without a figure: how the page colours it. A difference counts only
        beyond both the rule of thumb (0.25 notable, 0.5 large) and the sampling noise."""
        score, noise = self.score, self.noise
        if score is None or noise is None:
            return ""
        if score >= max(SMD_LARGE, noise):
            return "large"
        return "notable" if score >= max(SMD_NOTABLE, noise) else "none"


@dataclass(frozen=True)
class VersionMonitoring:
    """Everything the page shows of one version."""

    pk: int
    version: int
    is_production: bool
    cv_mae: float | None  # its cross-validated MAE, the promise its live MAE is held to
    overall: Accuracy  # the whole window
    weeks: tuple[Accuracy, ...]  # the weeks it made predictions in, oldest first
    drift: tuple[WeekDrift, ...]  # the same weeks
    training_coins: int
    training_sampled: int
    training_source: str  # where the training coins come from (its dataset)

    @property
    def label(self) -> str:
        return f"v{self.version}"

    def week(self, week: date) -> Accuracy | None:
        return next((row for row in self.weeks if row.week == week), None)

    def drift_week(self, week: date) -> WeekDrift | None:
        return next((row for row in self.drift if row.week == week), None)

    @property
    def latest_drift(self) -> WeekDrift | None:
        return next((row for row in reversed(self.drift) if row.score is not None), None)


@dataclass(frozen=True)
class ServingPeriod:
    """A move of the production alias and how long it held: which version served when."""

    version: int
    start: datetime
    end: datetime | None  # None: it serves now
    action: str
    actor: str


@dataclass(frozen=True)
class MonitoringReport:
    name: str
    since: datetime
    weeks: tuple[date, ...]  # every week of the window, oldest first (Mondays)
    versions: tuple[VersionMonitoring, ...]  # newest first
    serving: tuple[ServingPeriod, ...]  # oldest first
    photos_pending: int  # photos sampled but not measured yet (the time budget ran out): measured on the next load
    sample_per_week: int

    def get(self, version: int) -> VersionMonitoring | None:
        return next((item for item in self.versions if item.version == version), None)


def _setting(name: str, default: float) -> float:
    return getattr(settings, name, default)


def accuracy_of(rows: Sequence[dict], *, week: date | None, predictions: int, rejected: int) -> Accuracy:
    """Live accuracy of verified-after rows (predictions_verified_after); rejected rows gave no year and are left
    out of MAE, exact years and coverage (they count in the rejection rate)."""
    answered = [row for row in rows if not row["rejected"]]
    if not answered:
        return Accuracy(week=week, predictions=predictions, rejected=rejected, verified=0)
    errors = [abs(row["year"] - row["truth"]) for row in answered]
    return Accuracy(
        week=week,
        predictions=predictions,
        rejected=rejected,
        verified=len(answered),
        mae=statistics.fmean(errors),
        exact_rate=sum(error == 0 for error in errors) / len(errors),
        coverage=sum(row["low"] <= row["truth"] <= row["high"] for row in answered) / len(answered),
    )


def monitoring_report(
    *, weeks: int | None = None, name: str | None = None, budget_seconds: float | None = None
) -> MonitoringReport:
    """The page's figures for the last `weeks` weeks (MONITORING_WEEKS, 12 by default) of the served model.

    Measures the photo statistics it lacks within `budget_seconds` (MONITORING_STATS_SECONDS by default); the rest
    is counted in `photos_pending` and measured by the next call. The page does not call this: a background refresh
    does (training.services.monitoring_snapshot), and the page reads its stored result.
    """
    name = name or settings.MLFLOW_MODEL_NAME
    weeks = int(weeks or _setting("MONITORING_WEEKS", WEEKS))
    first = week_of(timezone.now()) - timedelta(weeks=weeks - 1)
    since = timezone.make_aware(datetime(first.year, first.month, first.day))
    all_weeks = tuple(first + timedelta(weeks=index) for index in range(weeks))

    versions = model_versions_serving_since(since=since, name=name)[
        : int(_setting("MONITORING_VERSIONS", MAX_VERSIONS))
    ]
    ids = [version.pk for version in versions]
    counts = predictions_weekly_counts(version_ids=ids, since=since)
    verified = predictions_verified_after(version_ids=ids, since=since)
    drift_inputs = _drift_inputs(versions, since=since)
    stats, pending = coins_photo_stats(
        coin_ids=_measure_order(drift_inputs),
        budget_seconds=_setting("MONITORING_STATS_SECONDS", STATS_SECONDS)
        if budget_seconds is None
        else budget_seconds,
    )
    monitored = tuple(
        _version_monitoring(
            version, counts=counts, verified=verified, drift_input=drift_inputs[version.pk], stats=stats
        )
        for version in versions
    )
    return MonitoringReport(
        name=name,
        since=since,
        weeks=all_weeks,
        versions=monitored,
        serving=tuple(_serving_periods(name=name)),
        photos_pending=pending,
        sample_per_week=int(_setting("MONITORING_SAMPLE_PER_WEEK", SAMPLE_PER_WEEK)),
    )


@dataclass(frozen=True)
class _DriftInput:
    """What one version's drift figures are computed from: sampled coin ids."""

    training: list[int]
    training_total: int
    training_source: str
    served: dict[date, tuple[int, list[int]]]  # week -> (coins served, the sample)


def _drift_inputs(versions: Iterable[ModelVersion], *, since: datetime) -> dict[int, _DriftInput]:
    per_week = int(_setting("MONITORING_SAMPLE_PER_WEEK", SAMPLE_PER_WEEK))
    per_training = int(_setting("MONITORING_TRAINING_SAMPLE", TRAINING_SAMPLE))
    inputs = {}
    for version in versions:
        training, source = model_version_training_coins(version=version)
        served = coins_served_by_week(version_id=version.pk, since=since)
        inputs[version.pk] = _DriftInput(
            training=sample_evenly(training, per_training),
            training_total=len(set(training)),
            training_source=source,
            served={week: (len(ids), sample_evenly(ids, per_week)) for week, ids in served.items()},
        )
    return inputs


def _measure_order(inputs: dict[int, _DriftInput]) -> list[int]:
    """Coins to measure, most needed first, for when the time budget runs out: every training sample (no drift
    without it), then the served weeks newest first."""
    order: list[int] = []
    for item in inputs.values():
        order.extend(item.training)
    weeks = sorted({week for item in inputs.values() for week in item.served}, reverse=True)
    for week in weeks:
        for item in inputs.values():
            order.extend(item.served.get(week, (0, []))[1])
    return order


def _version_monitoring(
    version: ModelVersion,
    *,
    counts: dict[tuple[int, date], tuple[int, int]],
    verified: list[dict],
    drift_input: _DriftInput,
    stats: dict,
) -> VersionMonitoring:
    mine = [row for row in verified if row["version_id"] == version.pk]
    weeks = sorted({week for (pk, week) in counts if pk == version.pk} | {row["week"] for row in mine})
    rows = []
    for week in weeks:
        made, rejected = counts.get((version.pk, week), (0, 0))
        rows.append(
            accuracy_of([row for row in mine if row["week"] == week], week=week, predictions=made, rejected=rejected)
        )
    overall = accuracy_of(
        mine,
        week=None,
        predictions=sum(row.predictions for row in rows),
        rejected=sum(row.rejected for row in rows),
    )
    training = [stats[coin_id] for coin_id in drift_input.training if coin_id in stats]
    drift = []
    for week, (served, sample) in sorted(drift_input.served.items()):
        measured = [stats[coin_id] for coin_id in sample if coin_id in stats]
        drift.append(
            WeekDrift(
                week=week,
                served=served,
                sampled=len(measured),
                training_sampled=len(training),
                features=photo_drift(measured, training),
            )
        )
    run_metrics = RunMetrics.from_dict(version.training_run.metrics if version.training_run else None)
    return VersionMonitoring(
        pk=version.pk,
        version=version.version,
        is_production=version.is_production,
        cv_mae=run_metrics.or_else(RunMetrics.from_dict(version.metrics)).mae,
        overall=overall,
        weeks=tuple(rows),
        drift=tuple(drift),
        training_coins=drift_input.training_total,
        training_sampled=len(training),
        training_source=drift_input.training_source,
    )


def _serving_periods(*, name: str) -> list[ServingPeriod]:
    moves = promotions_with_end(Promotion.objects.filter(name=name)).order_by("created_at", "id")
    return [
        ServingPeriod(
            version=move.to_version.version,
            start=move.created_at,
            end=move.ended_at,
            action=move.action,
            actor=move.actor.get_username() if move.actor else "",
        )
        for move in moves
    ]
