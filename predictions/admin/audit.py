"""The audit trail in the admin: predictions and curators' corrections (undos included), read-only for everyone."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Exists, OuterRef

from ..models import Correction, Prediction
from .base import ReadOnlyAdmin, ReadOnlyMixin


class CorrectionInline(ReadOnlyMixin, admin.TabularInline):
    """Earlier decisions (and undos) on the coin's read-only page (for staff who may view corrections)."""

    model = Correction
    fk_name = "coin"
    fields = (
        "created_at",
        "curator",
        "decision",
        "old_year",
        "new_year",
        "override",
        "excluded",
        "undoes",
        "applied_from",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "coin",
        "year",
        "interval_low",
        "interval_high",
        "uncertainty",
        "model_version",
        "latency_ms",
        "created_at",
    )
    list_select_related = ("coin", "model_version")
    list_filter = ("model_version", ("created_at", admin.DateFieldListFilter))
    search_fields = ("coin__id__exact",)  # shows the search box; get_search_results() does the work
    search_help_text = "A coin id (42 or #42)."
    # No date_hierarchy: its links are a DISTINCT over every prediction's date (1.07M rows at 1M coins); the date
    # filter's fixed choices (today, past 7 days, this month, this year) cost no query. No full count either.
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        """A coin id as an integer (`coin_id = 42`, the foreign key's index); `coin__id__exact` compared it as text
        (a cast on every row). Anything else finds nothing."""
        term = search_term.strip().removeprefix("#")
        if not term:
            return queryset, False
        if term.isdigit() and len(term) < 19:
            return queryset.filter(coin_id=int(term)), False
        return queryset.none(), False


@admin.register(Correction)
class CorrectionAdmin(ReadOnlyAdmin):
    """The audit trail of curators' decisions: who, when, old and new year, excluded; an undo is a row of its own
    that names the decision it undid (nothing is ever deleted)."""

    list_display = ("created_at", "coin", "curator", "decision", "old_year", "new_year", "override", "kind")
    list_select_related = ("coin", "curator", "undoes", "applied_from")
    list_filter = ("decision", "override", ("curator", admin.RelatedOnlyFieldListFilter))
    search_fields = ("coin__id__exact", "curator__username")
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        undone = Correction.objects.filter(undoes=OuterRef("pk"))
        return super().get_queryset(request).annotate(is_undone=Exists(undone))

    @admin.display(description="Kind")
    def kind(self, correction: Correction) -> str:
        if correction.undoes_id:
            return f"undo of decision #{correction.undoes_id}"
        if correction.applied_from_id:
            return f"same photos as coin #{correction.applied_from.coin_id}"
        return "decision (undone)" if getattr(correction, "is_undone", False) else "decision"
