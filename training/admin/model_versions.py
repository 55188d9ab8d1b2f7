"""Model versions: every registered version with its cross-validation, its comparison with Production, its plots,
and Promote / Roll back / Re-score."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from predictions.roles import can_review
from registry.models import ModelVersion
from registry.roles import can_promote
from registry.selectors import production_model_version
from training.models import DatasetVersion, TrainingRun

from . import actions
from .base import ReadOnlyAdmin
from .presenters import (
    DASH,
    admin_url,
    badge,
    fmt_number,
    fmt_share,
    run_comparison_view,
    stacked_date,
    verdict_badge,
    version_folds,
    version_summary,
)
from .views import (
    ArtifactView,
    CompareVersionsView,
    MonitoringView,
    MoversView,
    PromoteView,
    RescoreView,
    RollbackView,
    rollback_target,
    version_plots,
)


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    """Every registered version with its cross-validation, its comparison with Production, and Promote / Roll back."""

    list_display = (
        "version_label",
        "production_badge",
        "cv_mae_display",
        "ratio_display",
        "r2_display",
        "within_display",
        "coverage_display",
        "verdict_display",
        "created_short",
        "promoted_display",
    )
    list_display_links = ("version_label",)
    search_fields = ("=version", "run_id")
    ordering = ("-version",)
    actions = [actions.promote_selected, actions.rollback_production, actions.rescore_selected_version]
    fieldsets = (
        (
            "Registry",
            {
                "fields": (
                    "name",
                    "version",
                    "production_badge",
                    "aliases_display",
                    "run_id",
                    "created_at",
                    "promoted_at",
                    "promoted_by",
                )
            },
        ),
        ("Provenance", {"fields": ("training_run_link", "dataset_link", "predictions_count")}),
    )
    # Every field shown is read-only: a version changes only through promote / roll back.
    readonly_fields = tuple(flatten_fieldsets(fieldsets))

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelVersion]:
        return super().get_queryset(request).select_related("training_run", "promoted_by")

    def has_promote_permission(self, request: HttpRequest) -> bool:
        """The `promote` permission the list actions name."""
        return can_promote(request.user)

    # -- columns --------------------------------------------------------------------------------------------------

    @admin.display(description="version", ordering="version")
    def version_label(self, obj: ModelVersion) -> str:
        """ "v7": the served model's name is the same on every row (the banner says it); another model's name is
        shown small under the number. "coin-year v7" on one line took 111 px of the 1280 px list."""
        if obj.name == settings.MLFLOW_MODEL_NAME:
            return format_html('<span title="{}">v{}</span>', obj.name, obj.version)
        return format_html('v{}<small class="mt-cell-note">{}</small>', obj.version, obj.name)

    @admin.display(description="aliases", ordering="-is_production")
    def production_badge(self, obj: ModelVersion) -> str:
        tags = [badge("production", "prod")] if obj.is_production else []
        tags += [badge(alias, "info") for alias in (obj.aliases or []) if alias != "production"]
        return format_html('<span class="mt-badges">{}</span>', mark_safe(" ".join(tags))) if tags else DASH

    @admin.display(description="aliases")
    def aliases_display(self, obj: ModelVersion) -> str:
        return ", ".join(obj.aliases or []) or DASH

    @admin.display(description="CV MAE")
    def cv_mae_display(self, obj: ModelVersion) -> str:
        """The mean over folds, with its spread over folds ("± 1.2") small under it."""
        summary = version_summary(obj)
        if summary["mae"] is None:
            return DASH
        if summary["mae_std"] is None:
            return fmt_number(summary["mae"])
        return format_html(
            '{}<small class="mt-cell-note" title="spread over folds">± {}</small>',
            fmt_number(summary["mae"]),
            fmt_number(summary["mae_std"]),
        )

    @admin.display(description="÷ baseline")
    def ratio_display(self, obj: ModelVersion) -> str:
        """The ratio with the constant baseline's MAE under it: one column instead of two (the two took 209 px of
        the 1280 px list, this one about 100)."""
        summary = version_summary(obj)
        ratio = summary["ratio"]
        if ratio is None:
            return fmt_number(summary["baseline_mae"])
        # A model no better than always answering the median year is no model (DESIGN.md, "The model").
        tone = "bad" if ratio >= 1 else "warn" if ratio >= 0.75 else "ok"
        return format_html(
            '<span class="mt-ratio mt-ratio--{}" title="{}">{}×</span><small class="mt-cell-note">of {}</small>',
            tone,
            "worse than the constant baseline" if ratio >= 1 else "model MAE / baseline MAE",
            f"{ratio:.2f}",
            fmt_number(summary["baseline_mae"]),
        )

    @admin.display(description="R²")
    def r2_display(self, obj: ModelVersion) -> str:
        return fmt_number(version_summary(obj)["r2"], 3)

    @admin.display(description="±5 / ±10")
    def within_display(self, obj: ModelVersion) -> str:
        summary = version_summary(obj)
        return f"{fmt_share(summary['within_5'])} / {fmt_share(summary['within_10'])}"

    @admin.display(description="coverage")
    def coverage_display(self, obj: ModelVersion) -> str:
        summary = version_summary(obj)
        if summary["coverage"] is None:
            return DASH
        if summary["interval_level"] is None:
            return fmt_share(summary["coverage"])
        return format_html(
            '{}<small class="mt-cell-note">of {}</small>',
            fmt_share(summary["coverage"]),
            fmt_share(summary["interval_level"]),
        )

    @admin.display(description="verdict", ordering="training_run__verdict")
    def verdict_display(self, obj: ModelVersion) -> str:
        return verdict_badge(obj.training_run.verdict) if obj.training_run else DASH

    @admin.display(description="registered", ordering="created_at")
    def created_short(self, obj: ModelVersion) -> str:
        return stacked_date(obj.created_at)

    @admin.display(description="promoted", ordering="promoted_at")
    def promoted_display(self, obj: ModelVersion) -> str:
        if not obj.promoted_at:
            return DASH
        who = obj.promoted_by.get_username() if obj.promoted_by else ""
        return format_html(
            '<span title="{} ago{}">{}</span>{}',
            timesince(obj.promoted_at),
            f" by {who}" if who else "",
            stacked_date(obj.promoted_at),
            format_html('<small class="mt-cell-note mt-cell-note--clip">by {}</small>', who) if who else "",
        )

    @admin.display(description="training run")
    def training_run_link(self, obj: ModelVersion) -> str:
        run = obj.training_run
        if not run:
            return "— (registered outside a training run, e.g. `manage.py train`)"
        return format_html(
            '<a href="{}">{}</a> {}', admin_url(TrainingRun, "change", run.pk), str(run), verdict_badge(run.verdict)
        )

    @admin.display(description="training data")
    def dataset_link(self, obj: ModelVersion) -> str:
        run = obj.training_run
        links = []
        for label, dataset in (
            ("training", run and run.dataset_version),
            ("evaluation", run and run.evaluation_dataset),
        ):
            if dataset:
                url = admin_url(DatasetVersion, "change", dataset.pk)
                links.append(format_html('{}: <a href="{}">{}</a>', label, url, str(dataset)))
        return mark_safe("<br>".join(links)) if links else DASH

    @admin.display(description="predictions made")
    def predictions_count(self, obj: ModelVersion) -> int:
        return obj.predictions.count()

    # -- pages ----------------------------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        return (
            self.page_urls(
                ("rollback/", RollbackView, "rollback"),
                ("rescore/", RescoreView, "rescore"),
                ("movers/", MoversView, "movers"),
                ("monitoring/", MonitoringView, "monitoring"),
                ("compare/", CompareVersionsView, "compare"),
                ("<int:pk>/promote/", PromoteView, "promote"),
                ("<int:pk>/artifact/<path:artifact>", ArtifactView, "artifact"),
            )
            + super().get_urls()
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "production": production_model_version(),
            "can_promote": can_promote(request.user),
            "can_review": can_review(request.user),
            "rollback_target": rollback_target(),
        }
        return super().changelist_view(request, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        version = self.get_object(request, object_id)
        if version is None:
            return super().change_view(request, object_id, form_url, extra_context)
        extra_context = {
            **(extra_context or {}),
            "version": version,
            "summary": version_summary(version),
            "folds": version_folds(version),
            "comparison": run_comparison_view(version.training_run),
            "plots": version_plots(version),
            "production": production_model_version(name=version.name),
            "rollback_target": rollback_target() if version.is_production else None,
            "can_promote": can_promote(request.user),
            "show_save": False,
            "title": f"{version.name} v{version.version}",
        }
        return super().change_view(request, object_id, form_url, extra_context)
