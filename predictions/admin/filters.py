"""The review queue's filters: review state (the queue itself by default), order (most uncertain first by default),
decade of the predicted year."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import F

from .. import selectors

QUEUE_ORDERS = {
    # Where a label helps most first: the coins the model read but is least sure of (selectors.coin_review_list's
    # pred_uncertainty); among equals, the oldest. The coins it rejected (not a coin, date unreadable) come after all
    # of those, oldest first: their year distribution's entropy measures nothing (a cat has no date to hesitate
    # over), so by entropy they crowded the top; a curator clears them in a batch with the verdict filter (N each).
    "uncertain": (F("pred_no_year").asc(), F("pred_uncertainty").desc(nulls_last=True), "created_at", "id"),
    "oldest": ("created_at", "id"),
    "newest": ("-created_at", "-id"),
}
DEFAULT_ORDER = "uncertain"


def is_whole_queue(query) -> bool:
    """Whether a changelist query shows the whole awaiting queue (any order or page, no other filter, no search):
    its size is then the desk's progress count (selectors.review_progress().left), counted once per page."""
    keys = set(query) - {"order", "p", "o"}
    return keys <= {"state"} and query.get("state", "awaiting") == "awaiting"


class DefaultChoiceFilter(admin.SimpleListFilter):
    """A filter with a default choice instead of "All": no parameter in the URL means `default`."""

    default: str = ""

    def value(self):
        return super().value() or self.default

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


class ReviewStateFilter(DefaultChoiceFilter):
    """Opening the coin list shows the queue (awaiting review); the other states are a click away, coins their
    collectors deleted (kept for the audit trail and the labels) among them."""

    title = "review state"
    parameter_name = "state"
    default = "awaiting"

    def lookups(self, request, model_admin):
        return [
            ("awaiting", "Awaiting review"),
            ("verified", "Verified"),
            ("excluded", "Excluded from training"),
            ("not_a_coin", "Marked not a coin"),
            ("deleted", "Deleted by the collector"),
            ("all", "All coins"),
        ]

    def queryset(self, request, queryset):
        match self.value():
            case "awaiting":
                return queryset.filter(selectors.AWAITING_REVIEW)
            case "verified":
                return queryset.filter(verified_year__isnull=False)
            case "excluded":
                return queryset.filter(excluded_from_training=True)
            case "not_a_coin":
                return queryset.filter(not_a_coin=True)
            case "deleted":
                return queryset.filter(deleted_at__isnull=False)
            case "all":
                return queryset
        raise IncorrectLookupParameters(f"Unknown review state {self.value()!r}.")


class QueueOrderFilter(DefaultChoiceFilter):
    """Which coin comes next: most uncertain first (where a label teaches the model most), oldest or newest first.

    The ordering itself is applied by CoinAdmin.get_ordering(), so the review page's "next coin" follows it too.
    """

    title = "order"
    parameter_name = "order"
    default = DEFAULT_ORDER

    def lookups(self, request, model_admin):
        return [("uncertain", "Most uncertain first"), ("oldest", "Oldest first"), ("newest", "Newest first")]

    def queryset(self, request, queryset):
        if self.value() not in QUEUE_ORDERS:
            raise IncorrectLookupParameters(f"Unknown order {self.value()!r}.")
        return queryset


class DecadeFilter(admin.SimpleListFilter):
    """Decade of the latest predicted year (every decade a year can fall in: a fixed list, no query)."""

    title = "decade of the predicted year"
    parameter_name = "decade"

    def lookups(self, request, model_admin):
        return [(str(decade), f"{decade}s") for decade in selectors.DECADES]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        try:
            decade = int(self.value())
        except ValueError as error:
            raise IncorrectLookupParameters(f"Not a decade: {self.value()!r}.") from error
        return queryset.filter(pred_year__gte=decade, pred_year__lt=decade + 10, pred_no_year=False)


class VerdictFilter(admin.SimpleListFilter):
    """The model's verdict on the latest prediction: a year, or none (not a coin, date unreadable)."""

    title = "model's verdict"
    parameter_name = "verdict"

    def lookups(self, request, model_admin):
        return [("year", "A year"), ("not_a_coin", "Not a coin"), ("unreadable", "Date unreadable")]

    def queryset(self, request, queryset):
        match self.value():
            case None:
                return queryset
            case "year":
                return queryset.filter(pred_no_year=False)
            case "not_a_coin" | "unreadable":
                return queryset.filter(pred_rejected=self.value())
        raise IncorrectLookupParameters(f"Unknown verdict {self.value()!r}.")
