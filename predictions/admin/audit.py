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
    list_filter = ("model_version",)
    search_fields = ("coin__id__exact",)
    date_hierarchy = "created_at"


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
