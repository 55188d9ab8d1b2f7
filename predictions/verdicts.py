"""What a collector is told about a coin, in one word: dated, not a coin, unreadable, waiting, failed (or verified).

Coin.status says where the work stands (pending, predicted, failed); a "predicted" coin may still have no year,
when the model judged the photos not a coin or the date unreadable. The answer card, the "My coins" list and its
filter, and status.json all speak in these verdicts, so a photo of a cat is never "Predicted" nor counted as a coin.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from .models import Coin, Prediction


@dataclass(frozen=True)
class Verdict:
    key: str  # the filter's value and the badge's modifier (badge--<key>)
    label: str  # the badge's text
    heading: str  # the answer card's heading


VERIFIED = Verdict("verified", "Verified", "Verified year")
DATED = Verdict("dated", "Dated", "Predicted year")
NOT_A_COIN = Verdict("not_a_coin", "Not a coin", "No year given")
UNREADABLE = Verdict("unreadable", "Date not readable", "No year given")
WAITING = Verdict("waiting", "Waiting", "Predicted year")
FAILED = Verdict("failed", "Failed", "No year")

# The filter of "My coins", in the order its menu shows them ("dated" includes curator-verified coins).
FILTER_CHOICES = [
    ("dated", "Dated"),
    ("not_a_coin", "Not a coin"),
    ("unreadable", "Date not readable"),
    ("waiting", "Waiting for the model"),
    ("failed", "Failed"),
]

_REJECTED = {"not_a_coin": NOT_A_COIN, "unreadable": UNREADABLE}


def coin_verdict(coin: Coin) -> Verdict:
    """The coin's verdict: a curator's decision wins (a year, or "not a coin"); else the coin's state and its latest
    prediction."""
    if coin.verified_year is not None:
        return VERIFIED
    if coin.not_a_coin:
        return NOT_A_COIN
    if coin.status == Coin.Status.PENDING:
        return WAITING
    if coin.status == Coin.Status.FAILED:
        return FAILED
    prediction = coin.latest_prediction
    if prediction is None:
        return WAITING
    return _REJECTED.get(prediction.rejected, DATED)


def with_latest_rejection(queryset: QuerySet[Coin]) -> QuerySet[Coin]:
    """Annotate `latest_rejected`: the latest prediction's rejection ("" for a year, None without a prediction)."""
    latest = Prediction.objects.filter(coin=OuterRef("pk")).order_by("-created_at", "-id")
    return queryset.annotate(latest_rejected=Subquery(latest.values("rejected")[:1]))


def _conditions() -> dict[str, Q]:
    """Each verdict as a condition on a queryset annotated by with_latest_rejection (they do not overlap)."""
    unverified = Q(verified_year__isnull=True, not_a_coin=False)
    predicted = unverified & Q(status=Coin.Status.PREDICTED)
    return {
        "dated": Q(verified_year__isnull=False) | (predicted & Q(latest_rejected="")),
        "not_a_coin": Q(not_a_coin=True) | (predicted & Q(latest_rejected="not_a_coin")),
        "unreadable": predicted & Q(latest_rejected="unreadable"),
        "waiting": unverified
        & (Q(status=Coin.Status.PENDING) | (Q(status=Coin.Status.PREDICTED) & Q(latest_rejected__isnull=True))),
        "failed": unverified & Q(status=Coin.Status.FAILED),
    }


def verdict_filter(queryset: QuerySet[Coin], verdict: str) -> QuerySet[Coin]:
    """The coins of one verdict (a FILTER_CHOICES key)."""
    return with_latest_rejection(queryset).filter(_conditions()[verdict])


def verdict_counts(queryset: QuerySet[Coin]) -> dict[str, int]:
    """How many coins of each verdict, in one query; "coins" counts everything but the photos that are not coins."""
    # aliases apart from the field names: an alias "not_a_coin" would shadow Coin.not_a_coin in the conditions
    totals = with_latest_rejection(queryset).aggregate(
        **{f"verdict_{key}": Count("pk", filter=condition) for key, condition in _conditions().items()}
    )
    counts = {key: totals[f"verdict_{key}"] for key in _conditions()}
    counts["coins"] = sum(counts[key] for key in counts if key != "not_a_coin")
    return counts
