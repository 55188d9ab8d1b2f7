"""The promotion history: which version served when, every move of the production alias with who made it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html

from registry.models import ModelVersion, Promotion
from training.selectors import promotions_latest, promotions_with_end

from .base import ReadOnlyAdmin
from .presenters import DASH, PROMOTION_TONES, admin_url, badge, fmt_duration, promotion_timeline, short_date

# Serving periods drawn on the timeline above the list.
TIMELINE_PERIODS = 30


@admin.register(Promotion)
class PromotionAdmin(ReadOnlyAdmin):
    """Which version served when: every move of the production alias, newest first, with who did it."""

    list_display = ("when", "action_badge", "from_display", "to_display", "served_until", "served_for", "actor_display")
    list_filter = ("action",)
    ordering = ("-created_at", "-id")
    fields = ("name", "action", "from_version", "to_version", "actor", "created_at")
    readonly_fields = fields
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Promotion]:
        return promotions_with_end(super().get_queryset(request))

    @admin.display(description="when", ordering="created_at")
    def when(self, obj: Promotion) -> str:
        return short_date(obj.created_at)

    @admin.display(description="action", ordering="action")
    def action_badge(self, obj: Promotion) -> str:
        return badge(obj.get_action_display(), PROMOTION_TONES.get(obj.action, "prod"))

    @admin.display(description="from")
    def from_display(self, obj: Promotion) -> str:
        return self._version(obj.from_version)

    @admin.display(description="to (served from then)")
    def to_display(self, obj: Promotion) -> str:
        return self._version(obj.to_version)

    def _version(self, version: ModelVersion | None) -> str:
        if version is None:
            return DASH
        return format_html('<a href="{}">v{}</a>', admin_url(ModelVersion, "change", version.pk), version.version)

    @admin.display(description="who", ordering="actor")
    def actor_display(self, obj: Promotion) -> str:
        return obj.actor.get_username() if obj.actor else "system"

    @admin.display(description="until")
    def served_until(self, obj: Promotion) -> str:
        return badge("serving now", "prod") if obj.ended_at is None else short_date(obj.ended_at)

    @admin.display(description="served for")
    def served_for(self, obj: Promotion) -> str:
        return fmt_duration((obj.ended_at or timezone.now()) - obj.created_at)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        timeline = promotion_timeline(promotions_latest(limit=TIMELINE_PERIODS))
        return super().changelist_view(request, {**(extra_context or {}), "timeline": timeline})
