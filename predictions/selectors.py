"""Reads of coins and predictions: querysets with their joins applied, and the ownership rule in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.db.models import Case, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, When
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from django.utils import timezone

from training.ml.answer import REJECT_MESSAGES

from . import verdicts
from .models import YEAR_MAX, YEAR_MIN, Coin, Correction, Prediction


def _with_predictions(queryset: QuerySet[Coin]) -> QuerySet[Coin]:
    return queryset.select_related("owner").prefetch_related(
        Prefetch("predictions", queryset=Prediction.objects.select_related("model_version"))
    )


def coins_of(user) -> QuerySet[Coin]:
    """The coins a collector sees as theirs: their own, less those they deleted (kept hidden for the audit trail and
    the training label, see services.coin_delete). Every collector-facing read starts here."""
    return Coin.objects.filter(owner=user, deleted_at__isnull=True)


def coin_list_for_user(
    *,
    user,
    year_min: int | None = None,
    year_max: int | None = None,
    status: str | None = None,
    verdict: str | None = None,
) -> QuerySet[Coin]:
    """A collector's own coins, newest first; nobody sees another collector's coins (or a deleted one) through this.
    `verdict` is one of verdicts.FILTER_CHOICES (dated, not a coin, unreadable, waiting, failed)."""
    queryset = coins_of(user)
    if status:
        queryset = queryset.filter(status=status)
    if verdict:
        queryset = verdicts.verdict_filter(queryset, verdict)
    if year_min is not None or year_max is not None:
        # Filter on the year the collector sees: the curator's if there is one, else the latest prediction's unless
        # it was rejected (a non-coin's best guess is no year).
        latest = Prediction.objects.filter(coin=OuterRef("pk")).order_by("-created_at", "-id")
        queryset = queryset.annotate(latest_answer=Subquery(latest.values("rejected")[:1])).annotate(
            shown_year=Coalesce(
                "verified_year", Case(When(latest_answer="", then=Subquery(latest.values("year")[:1])), default=None)
            )
        )
        if year_min is not None:
            queryset = queryset.filter(shown_year__gte=year_min)
        if year_max is not None:
            queryset = queryset.filter(shown_year__lte=year_max)
    return _with_predictions(queryset).order_by("-created_at", "-id")


def coin_get_for_user(*, user, coin_id: int) -> Coin:
    """The coin if it is the user's own and not deleted, else 404 (not 403: whether a coin exists is not the
    caller's business)."""
    return get_object_or_404(_with_predictions(coins_of(user)), pk=coin_id)


AWAITING_REVIEW = Q(
    verified_year__isnull=True,
    excluded_from_training=False,
    not_a_coin=False,
    status=Coin.Status.PREDICTED,
    deleted_at__isnull=True,
)
"""Coins awaiting a curator: predicted, not verified, not excluded, not marked not a coin, not deleted by their
collector."""


# --- review queue (admin) ---------------------------------------------------------------------------------------------


def coin_review_list() -> QuerySet[Coin]:
    """Every coin with its latest prediction's figures: year, uncertainty and verdict as the coin's own columns
    (Coin.pred_*, kept in step with the predictions, which the queue's partial indexes serve), the interval and model
    version through the `last_prediction` join (read for the 50 rows shown only).

    The admin's review queue sorts and filters by these (most uncertain first, decade of the predicted year). At 1M
    coins the correlated subqueries this used to annotate cost 16-18 s for the first page (issue 24).
    """
    return (
        Coin.objects.select_related("owner", "claimed_by", "last_prediction__model_version")
        .annotate(
            pred_low=F("last_prediction__interval_low"),
            pred_high=F("last_prediction__interval_high"),
            pred_version=F("last_prediction__model_version__version"),
        )
        .annotate(interval_width=F("pred_high") - F("pred_low"))
    )


DECADES = list(range(YEAR_MIN // 10 * 10, YEAR_MAX + 1, 10))
"""Every decade a year can fall in (1700s..2020s): the queue's decade filter offers these, a fixed list that costs no
query (reading the decades the predictions fall in was a DISTINCT over every prediction: 32.7 s at 1.07M)."""


def prediction_decades() -> list[int]:
    """Decades (1870, 1880, ...) in which some coin's latest prediction gives a year, from the coins' own column.

    `.order_by()` clears the model's default ordering, which would otherwise join the DISTINCT (and sort every row).
    """
    years = (
        Coin.objects.filter(pred_year__isnull=False, pred_no_year=False)
        .order_by()
        .values_list("pred_year", flat=True)
        .distinct()
    )
    return sorted({year // 10 * 10 for year in years})


def coin_get_for_review(*, coin_id: int) -> Coin:
    """Any coin (curators see all of them, deleted ones too) with its predictions (and model versions) and its
    corrections' curators."""
    return get_object_or_404(
        Coin.objects.select_related("owner").prefetch_related(
            Prefetch("predictions", queryset=Prediction.objects.select_related("model_version")),
            Prefetch("corrections", queryset=Correction.objects.select_related("curator", "undoes", "applied_from")),
        ),
        pk=coin_id,
    )


def coins_same_photos(coin: Coin) -> list[Coin]:
    """Other coins with exactly this coin's two photos (both SHA-256 hashes equal), oldest first, with their owners:
    the same pair uploaded by another collector (one collector's own re-upload opens their first coin instead)."""
    return list(
        Coin.objects.filter(front_sha256=coin.front_sha256, back_sha256=coin.back_sha256)
        .exclude(pk=coin.pk)
        .select_related("owner", "claimed_by")
        .order_by("id")
    )


@dataclass(frozen=True)
class ReviewProgress:
    """The review desk's progress line: decisions made today (by this curator, by everyone) and coins still waiting."""

    mine_today: int
    all_today: int
    left: int
    left_more: bool = False  # more than `left` (QUEUE_COUNT_CAP): counted no further


QUEUE_COUNT_CAP = 10_000
"""Queue sizes are counted up to this and shown as "10000+" beyond: an exact COUNT of the awaiting queue read every
row (1.6 s for 950k coins on the loaded 2-core machine), a capped one stops after 10,001."""


def count_capped(queryset: QuerySet) -> tuple[int, bool]:
    """(rows up to QUEUE_COUNT_CAP, whether there are more): SELECT COUNT(*) FROM (... LIMIT cap + 1)."""
    count = queryset.order_by()[: QUEUE_COUNT_CAP + 1].count()
    return min(count, QUEUE_COUNT_CAP), count > QUEUE_COUNT_CAP


def review_progress(*, curator) -> ReviewProgress:
    """Coins decided since local midnight (an undone decision does not count, an undo is no decision) and the size
    of the whole queue (AWAITING_REVIEW, whatever filter the curator works with)."""
    midnight = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    decided = Correction.objects.filter(created_at__gte=midnight, undoes__isnull=True, undone_by__isnull=True)
    left, more = count_capped(Coin.objects.filter(AWAITING_REVIEW))
    return ReviewProgress(
        mine_today=decided.filter(curator=curator).values("coin_id").distinct().count(),
        all_today=decided.values("coin_id").distinct().count(),
        left=left,
        left_more=more,
    )


def corrections_undoable(*, curator, within_seconds: int, limit: int = 5) -> list[Correction]:
    """The curator's own decisions of the last `within_seconds` that an undo may still take back, newest first: not an
    undo themselves, not undone yet, and still the coin's latest decision (undoing an earlier one would silently
    throw away whatever was decided after it)."""
    since = timezone.now() - timedelta(seconds=within_seconds)
    later = Correction.objects.filter(coin=OuterRef("coin"), pk__gt=OuterRef("pk"))  # ids grow with each insert
    return list(
        Correction.objects.filter(curator=curator, created_at__gte=since, undoes__isnull=True, undone_by__isnull=True)
        .exclude(Exists(later))
        .select_related("coin")
        .order_by("-created_at", "-id")[:limit]
    )


def prediction_details(prediction: Prediction) -> dict:
    """The API's "details" entry of a stored prediction: the answer with its interval, level, scores and
    alternatives, or the rejection, what to do about it and the scores behind it (as the registered pyfunc answers
    them; what a seed regression version stored has no scores)."""
    if prediction.rejected:
        details = {"rejected": prediction.rejected, "message": REJECT_MESSAGES[prediction.rejected]}
    else:
        details = {"year": prediction.year, "low": prediction.interval_low, "high": prediction.interval_high}
    if prediction.interval_level is not None and not prediction.rejected:
        details["level"] = prediction.interval_level
    if prediction.coin_score is not None:
        details["coin_score"] = prediction.coin_score
    if prediction.read_score is not None:
        details["read_score"] = prediction.read_score
    if prediction.alternatives and not prediction.rejected:
        details["alternatives"] = prediction.alternatives
    if prediction.second_look:
        details["second_look"] = prediction.second_look
    if prediction.readers:
        details["readers"] = prediction.readers
    if prediction.ocr_reading is not None:
        details["ocr"] = prediction.ocr_reading
    return details
