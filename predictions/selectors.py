"""Reads of coins and predictions: querysets with their joins applied, and the ownership rule in one place."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from .models import Coin, Prediction


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
    if year_min is not None:
        queryset = queryset.filter(predictions__year__gte=year_min)
    if year_max is not None:
        queryset = queryset.filter(predictions__year__lte=year_max)
    if year_min is not None or year_max is not None:
        queryset = queryset.distinct()
    return _with_predictions(queryset).order_by("-created_at", "-id")


def coin_get_for_user(*, user, coin_id: int) -> Coin:
    """The coin if it is the user's own, else 404 (not 403: whether a coin exists is not the caller's business)."""
    return get_object_or_404(_with_predictions(Coin.objects.filter(owner=user)), pk=coin_id)


def review_queue() -> QuerySet[Coin]:
    """Coins awaiting a curator: predicted, not verified, not excluded; oldest first."""
    return _with_predictions(
        Coin.objects.filter(verified_year__isnull=True, excluded_from_training=False, status=Coin.Status.PREDICTED)
    ).order_by("created_at", "id")
