"""A second look at labels: the verified years that held-out models contradict with confidence, ranked, for the
curators to re-check on the review desk.

Every training run keeps each training coin's held-out answer (OutOfFoldPrediction: its fold's model, or the fold
ensemble for the calibration holdout). A wrong label cannot teach the model that reads the coin, since that model
never saw it; so where the model reads another year with confidence, either the label or the reading is wrong, and
a person should look (Northcutt, Jiang and Chuang, "Confident learning", JAIR 2021; cleanlab's find_label_issues).

Date reader (a distribution over years): confident learning with per-year thresholds. A year's threshold t(y) is
the mean probability the held-out models give that year on the coins labelled with it (the model's self-confidence,
cleanlab's confident threshold). cleanlab gives a class no example carries a threshold no probability reaches; with
~300 possible years and a few hundred labels most years have one or two coins or none, and the true year of a wrong
label is usually one nobody else carries, so years with fewer than MIN_YEAR_SUPPORT coins take the global mean.
A label is suspect when the answer is another year and p(label) < t(label); it is a confident suspect when
p(answer) >= t(answer) as well (the coin lands off the diagonal of cleanlab's confident joint).

Suspects are ranked by p(label), lowest first (cleanlab's default label-quality score, "self_confidence"), at the
page's resolution of one percentage point, then by the margin p(answer) - p(label). Not by the margin alone:
measured on 35 coins of a small fine-tune (tests/training/test_suspect_labels.py), the models read each of three
labels planted 40 years off as its true year and gave those labels p <= 0.001, while every right or misread label
kept p >= 0.1; but they were only 0.44-0.78 sure of the true years (global threshold 0.71, so one of the three was
a confident suspect), and a misread label (p 0.24, answer 0.75) had a larger margin than a planted one (0.0, 0.44).
By the margin, 2 of the first 3 rows were planted; by p(label), all 3.

Regression head (one year, no distribution): a label is suspect when the held-out answer is more than
REGRESSION_Z robust standard deviations of the run's residuals (1.4826 x their median absolute deviation) and at
least MIN_REGRESSION_YEARS away from it; ranked by that distance.

Coins leave the list once a curator decides them again after the run started (confirmed or corrected: the next run
trains on that decision), when their label changed since, or when they were excluded from training.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import median
from typing import TYPE_CHECKING

from django.db import transaction

from predictions.models import Coin, Correction

from ..models import OutOfFoldPrediction, TrainingRun

if TYPE_CHECKING:  # annotations only: the admin pages that read suspects must not load torch (kfold, data do)
    from training.ml.kfold import FitResult
    from training.ml.labels import CoinSample

MIN_YEAR_SUPPORT = 5
REGRESSION_Z = 3.0
MIN_REGRESSION_YEARS = 2
SMALLINT = (-32768, 32767)


@dataclass(frozen=True)
class SuspectLabel:
    """One verified year the held-out models contradict; p_* and margin are None for the regression head."""

    coin: Coin
    verified_year: int
    predicted_year: int
    p_label: float | None
    p_top: float | None
    margin: float | None  # p_top - p_label: breaks ties of p_label
    confident: bool  # the held-out answer reaches its own year's threshold too (off the confident joint's diagonal)
    threshold: float | None  # t(verified year): the self-confidence below which p_label is suspect
    fold: int | None  # None: the calibration holdout (all fold models together)
    verified_by: str  # the curator of the decision that set the year; "" for a label that came with the coin
    verified_at: datetime | None

    @property
    def distance(self) -> int:
        """|held-out answer - verified year| in years."""
        return abs(self.predicted_year - self.verified_year)


@dataclass(frozen=True)
class SuspectLabels:
    """The ranked suspects of the newest training run that kept held-out answers, and what was left out."""

    run: TrainingRun | None
    method: str  # "confident learning" (date reader) or "distance" (regression head); "" without a run
    checked: int  # labels compared (unchanged since the run, not excluded, not decided again)
    found: int  # suspects among them (the list shows the first `limit`)
    found_confident: int  # of which the answer reaches its own year's threshold
    rechecked: int  # left out: decided again by a curator since the run started
    changed: int  # left out: label changed since the run (or excluded from training)
    global_threshold: float | None  # mean p(label) over the run's coins (date reader)
    cutoff_years: float | None  # the regression head's distance threshold
    suspects: list[SuspectLabel]


def out_of_fold_store(*, run_id: int, result: FitResult, samples: Sequence[CoinSample]) -> int:
    """Keep every training coin's held-out answer of a finished K-fold fit (what `samples`, in fit's order, were);
    returns how many rows were written. A second call for the same run replaces its rows."""
    reader = len(result.oof_p_label) == len(result.oof_index) and len(result.oof_index) > 0
    rows = []
    parts = (
        (result.oof_index, result.oof_pred, result.oof_fold + 1, result.oof_p_label, result.oof_p_top),
        (result.calibration_index, result.holdout_pred, None, result.holdout_p_label, result.holdout_p_top),
    )
    for index, predicted, folds, p_label, p_top in parts:
        if len(predicted) != len(index):  # an engine that kept no held-out answers for this part
            continue
        has_p = reader and len(p_label) == len(index)
        for position, sample_index in enumerate(index):
            sample = samples[int(sample_index)]
            if not str(sample.key).isdigit():
                continue  # not a stored coin (samples built outside the site)
            rows.append(
                OutOfFoldPrediction(
                    training_run_id=run_id,
                    coin_id=int(sample.key),
                    label_year=int(sample.year),
                    predicted_year=int(min(max(round(float(predicted[position])), SMALLINT[0]), SMALLINT[1])),
                    fold=None if folds is None else int(folds[position]),
                    p_label=float(p_label[position]) if has_p else None,
                    p_top=float(p_top[position]) if has_p else None,
                )
            )
    with transaction.atomic():
        OutOfFoldPrediction.objects.filter(training_run_id=run_id).delete()
        OutOfFoldPrediction.objects.bulk_create(rows, batch_size=500)
    return len(rows)


def latest_run_with_out_of_fold() -> TrainingRun | None:
    """The newest succeeded run that kept held-out answers (a failed or cancelled run proves nothing)."""
    runs = TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED, out_of_fold__isnull=False)
    return runs.distinct().order_by("-finished_at", "-id").first()


@dataclass(frozen=True)
class _Row:
    coin_id: int
    label: int
    predicted: int
    fold: int | None
    p_label: float | None
    p_top: float | None


def suspect_labels_find(*, limit: int = 100, run: TrainingRun | None = None) -> SuspectLabels:
    """The labels of `run` (default: latest_run_with_out_of_fold()) that its held-out answers contradict, most
    certainly wrong first, at most `limit` of them (see the module docstring for the rule)."""
    run = run or latest_run_with_out_of_fold()
    if run is None:
        return SuspectLabels(None, "", 0, 0, 0, 0, 0, None, None, [])
    values = OutOfFoldPrediction.objects.filter(training_run=run).values_list(
        "coin_id", "label_year", "predicted_year", "fold", "p_label", "p_top"
    )
    rows = [_Row(*value) for value in values]
    current = {
        coin_id: (year, excluded)
        for coin_id, year, excluded in Coin.objects.filter(pk__in=[row.coin_id for row in rows]).values_list(
            "pk", "verified_year", "excluded_from_training"
        )
    }
    since = run.started_at or run.created_at
    decided_again = set(
        Correction.objects.filter(
            coin_id__in=list(current), created_at__gt=since, undoes__isnull=True, undone_by__isnull=True
        ).values_list("coin_id", flat=True)
    )
    distribution = bool(rows) and all(row.p_label is not None and row.p_top is not None for row in rows)
    if distribution:
        flagged, global_threshold, cutoff = _confident_learning(rows)
    else:
        flagged, global_threshold, cutoff = _far_answers(rows)

    changed = sum(1 for row in rows if current.get(row.coin_id, (None, True)) != (row.label, False))
    rechecked = sum(
        1 for row in rows if row.coin_id in decided_again and current.get(row.coin_id) == (row.label, False)
    )
    kept = [
        flag
        for flag in flagged
        if current.get(flag.row.coin_id) == (flag.row.label, False) and flag.row.coin_id not in decided_again
    ]
    kept.sort(key=lambda flag: (*flag.rank, -abs(flag.row.predicted - flag.row.label), flag.row.coin_id))
    shown = kept[:limit]
    return SuspectLabels(
        run=run,
        method="confident learning" if distribution else "distance",
        checked=len(rows) - changed - rechecked,
        found=len(kept),
        found_confident=sum(1 for flag in kept if flag.confident),
        rechecked=rechecked,
        changed=changed,
        global_threshold=global_threshold,
        cutoff_years=cutoff,
        suspects=_with_coins(shown),
    )


@dataclass(frozen=True)
class _Flag:
    row: _Row
    rank: tuple[float, float]  # sorted ascending
    threshold: float | None
    confident: bool


def _confident_learning(rows: list[_Row]) -> tuple[list[_Flag], float, None]:
    """The suspects of a run with distributions (see the module docstring) and the global threshold."""
    by_year: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        by_year[row.label].append(row.p_label)
    global_threshold = sum(row.p_label for row in rows) / len(rows)

    def threshold(year: int) -> float:
        seen = by_year.get(year, [])
        return sum(seen) / len(seen) if len(seen) >= MIN_YEAR_SUPPORT else global_threshold

    flagged = []
    for row in rows:
        if row.predicted == row.label or row.p_label >= threshold(row.label):
            continue
        rank = (round(row.p_label, 2), row.p_label - row.p_top)
        flagged.append(_Flag(row, rank, threshold(row.label), row.p_top >= threshold(row.predicted)))
    return flagged, global_threshold, None


def _far_answers(rows: list[_Row]) -> tuple[list[_Flag], None, float | None]:
    """The suspects of a run without distributions (answers beyond the robust cutoff) and the cutoff in years."""
    if not rows:
        return [], None, None
    residuals = [row.predicted - row.label for row in rows]
    centre = median(residuals)
    spread = 1.4826 * median(abs(r - centre) for r in residuals)
    cutoff = max(REGRESSION_Z * spread, MIN_REGRESSION_YEARS)
    flagged = [
        _Flag(row, (-float(abs(r)), 0.0), None, True) for row, r in zip(rows, residuals, strict=True) if abs(r) > cutoff
    ]
    return flagged, None, float(cutoff) if math.isfinite(cutoff) else None


def _with_coins(shown: list[_Flag]) -> list[SuspectLabel]:
    """The shown suspects with their coins and who set the year (the latest decision not undone), in two queries."""
    ids = [flag.row.coin_id for flag in shown]
    coins = Coin.objects.in_bulk(ids)
    deciders: dict[int, Correction] = {}
    decisions = Correction.objects.filter(coin_id__in=ids, undoes__isnull=True, undone_by__isnull=True)
    for correction in decisions.select_related("curator").order_by("coin_id", "-created_at", "-id"):
        deciders.setdefault(correction.coin_id, correction)
    suspects = []
    for flag in shown:
        row, coin, decision = flag.row, coins[flag.row.coin_id], deciders.get(flag.row.coin_id)
        suspects.append(
            SuspectLabel(
                coin=coin,
                verified_year=row.label,
                predicted_year=row.predicted,
                p_label=row.p_label,
                p_top=row.p_top,
                margin=row.p_top - row.p_label if row.p_label is not None else None,
                confident=flag.confident,
                threshold=flag.threshold,
                fold=row.fold,
                verified_by=decision.curator.get_username() if decision else "",
                verified_at=coin.verified_at or (decision.created_at if decision else None),
            )
        )
    return suspects
