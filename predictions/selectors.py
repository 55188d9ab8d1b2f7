"""Reads of coins and predictions: querysets with their joins applied, and the ownership rule in one place."""

from __future__ import annotations

from django.db.models import F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from training.ml.ensemble import REJECT_MESSAGES

from .models import Coin, Correction, Prediction


def _with_predictions(queryset: QuerySet[Coin]) -> QuerySet[Coin]:
    return queryset.select_related("owner").prefetch_related(
        Prefetch("predictions", queryset=Prediction.objects.select_related("model_version"))
    )


def coin_list_for_user(
    *, user, year_min: int | None = None, year_max: int | None = None, status: str | None = None
) -> QuerySet[Coin]:
    """A collector's own coins, newest first; nobody sees another collector's coins through this."""
    queryset = Coin.objects.filter(owner=user)
    if status:
        queryset = queryset.filter(status=status)
    if year_min is not None or year_max is not None:
        # Filter on the year the collector sees: the curator's if there is one, else the latest prediction's.
        latest = Prediction.objects.filter(coin=OuterRef("pk")).order_by("-created_at", "-id")
        queryset = queryset.annotate(shown_year=Coalesce("verified_year", Subquery(latest.values("year")[:1])))
        if year_min is not None:
            queryset = queryset.filter(shown_year__gte=year_min)
        if year_max is not None:
            queryset = queryset.filter(shown_year__lte=year_max)
    return _with_predictions(queryset).order_by("-created_at", "-id")


def coin_get_for_user(*, user, coin_id: int) -> Coin:
    """The coin if it is the user's own, else 404 (not 403: whether a coin exists is not the caller's business)."""
    return get_object_or_404(_with_predictions(Coin.objects.filter(owner=user)), pk=coin_id)


def review_queue() -> QuerySet[Coin]:
    """Coins awaiting a curator: predicted, not verified, not excluded; oldest first."""
    return _with_predictions(
        Coin.objects.filter(verified_year__isnull=True, excluded_from_training=False, status=Coin.Status.PREDICTED)
    ).order_by("created_at", "id")


# --- review queue (admin) ---------------------------------------------------------------------------------------------

AWAITING_REVIEW = Q(verified_year__isnull=True, excluded_from_training=False, status=Coin.Status.PREDICTED)
"""The same coins as review_queue(): predicted, not verified, not excluded (as a Q for the admin's filters)."""


def coin_review_list() -> QuerySet[Coin]:
    """Every coin with its latest prediction's year, interval (low, high, width) and model version as columns.

    The admin's review queue sorts and filters by these (widest interval first, decade of the predicted year); as
    correlated subqueries they cost one query for the whole page instead of one per coin.
    """
    latest = Prediction.objects.filter(coin=OuterRef("pk")).order_by("-created_at", "-id")
    return (
        Coin.objects.select_related("owner")
        .annotate(
            pred_year=Subquery(latest.values("year")[:1]),
            pred_low=Subquery(latest.values("interval_low")[:1]),
            pred_high=Subquery(latest.values("interval_high")[:1]),
            pred_version=Subquery(latest.values("model_version__version")[:1]),
        )
        .annotate(interval_width=F("pred_high") - F("pred_low"))
    )


def prediction_decades() -> list[int]:
    """Decades (1870, 1880, ...) in which some prediction falls: the choices of the queue's decade filter."""
    years = Prediction.objects.values_list("year", flat=True).distinct()
    return sorted({year // 10 * 10 for year in years})


def coin_get_for_review(*, coin_id: int) -> Coin:
    """Any coin (curators see all of them) with its predictions (and model versions) and its corrections' curators."""
    return get_object_or_404(
        Coin.objects.select_related("owner").prefetch_related(
            Prefetch("predictions", queryset=Prediction.objects.select_related("model_version")),
            Prefetch("corrections", queryset=Correction.objects.select_related("curator")),
        ),
        pk=coin_id,
    )


def prediction_details(prediction: Prediction) -> dict:
    """The API's "details" entry of a stored prediction: the answer with its interval, level, scores and
    alternatives, or the rejection and what to do about it (what a seed regression version stored has no scores)."""
    if prediction.rejected:
        return {"rejected": prediction.rejected, "message": REJECT_MESSAGES[prediction.rejected]}
    details = {"year": prediction.year, "low": prediction.interval_low, "high": prediction.interval_high}
    if prediction.interval_level is not None:
        details["level"] = prediction.interval_level
    if prediction.coin_score is not None:
        details["coin_score"] = prediction.coin_score
    if prediction.read_score is not None:
        details["read_score"] = prediction.read_score
    if prediction.alternatives:
        details["alternatives"] = prediction.alternatives
    return details
