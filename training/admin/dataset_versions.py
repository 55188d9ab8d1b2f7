"""Frozen training and evaluation sets: what a run learned from and was judged on, identified by content hash."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from training.models import DatasetVersion, TrainingRun
from training.selectors import dataset_versions_with_use_counts, training_runs_using_dataset

from .base import ReadOnlyAdmin
from .presenters import DASH, admin_url, fmt_number, short_date


def _manifest_rows(dataset: DatasetVersion) -> list[dict[str, Any]]:
    """The manifest's rows ({coin_id, front_sha256, back_sha256, year, weight}, as training.services freezes them)."""
    return [row for row in (dataset.manifest or []) if isinstance(row, dict)]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
    """Frozen training and evaluation sets: what a run learned from, identified by content hash."""

    MANIFEST_PREVIEW_ROWS = 25

    list_display = ("dataset_label", "kind", "coin_count", "years", "hash_short", "runs", "created_short")
    list_filter = ("kind",)
    search_fields = ("content_hash",)
    fields = (
        "kind",
        "content_hash",
        "coin_count",
        "years",
        "weighted",
        "created_at",
        "used_by",
        "decades",
        "manifest_preview",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DatasetVersion]:
        """The list never reads the manifest (up to 5.9 MB of JSON per row at 1M coins): deferred; the one dataset's
        page loads its own when the preview asks."""
        return dataset_versions_with_use_counts(super().get_queryset(request)).defer("manifest")

    @admin.display(description="dataset", ordering="id")
    def dataset_label(self, obj: DatasetVersion) -> str:
        return f"#{obj.pk}"

    @admin.display(description="frozen", ordering="created_at")
    def created_short(self, obj: DatasetVersion) -> str:
        return short_date(obj.created_at)

    @admin.display(description="years")
    def years(self, obj: DatasetVersion) -> str:
        return f"{obj.year_min}–{obj.year_max}" if obj.year_min is not None else DASH

    @admin.display(description="content hash")
    def hash_short(self, obj: DatasetVersion) -> str:
        return format_html('<code title="{}">{}…</code>', obj.content_hash, obj.content_hash[:12])

    @admin.display(description="runs")
    def runs(self, obj: DatasetVersion) -> str:
        return f"{obj.training_uses} training · {obj.evaluation_uses} evaluation"

    @admin.display(description="hard examples (weight > 1)")
    def weighted(self, obj: DatasetVersion) -> int:
        return sum(1 for row in _manifest_rows(obj) if (row.get("weight") or 1) > 1)

    @admin.display(description="used by")
    def used_by(self, obj: DatasetVersion) -> str:
        runs = training_runs_using_dataset(dataset=obj)
        if not runs:
            return DASH
        return format_html_join(
            ", ", '<a href="{}">#{}</a>', ((admin_url(TrainingRun, "change", run.pk), run.pk) for run in runs)
        )

    @admin.display(description="coins per decade")
    def decades(self, obj: DatasetVersion) -> str:
        counts: dict[int, int] = {}
        for row in _manifest_rows(obj):
            if row.get("year") is not None:
                decade = int(row["year"]) // 10 * 10
                counts[decade] = counts.get(decade, 0) + 1
        if not counts:
            return DASH
        top = max(counts.values())
        bars = format_html_join(
            "",
            '<div class="mt-hist__row"><span class="mt-hist__label">{}s</span>'
            '<span class="mt-hist__bar" data-mt-width="{}"></span><span class="mt-hist__value">{}</span></div>',
            ((decade, f"{100 * n / top:.1f}", n) for decade, n in sorted(counts.items())),
        )
        return format_html('<div class="mt-hist">{}</div>', bars)

    @admin.display(description="manifest")
    def manifest_preview(self, obj: DatasetVersion) -> str:
        rows = _manifest_rows(obj)
        if not rows:
            return "— (empty)"
        shown = rows[: self.MANIFEST_PREVIEW_ROWS]
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            (
                (
                    row.get("coin_id", DASH),
                    row.get("year", DASH),
                    fmt_number(row.get("weight", 1), 1),
                    str(row.get("front_sha256", ""))[:12],
                    str(row.get("back_sha256", ""))[:12],
                )
                for row in shown
            ),
        )
        more = f"… and {len(rows) - len(shown)} more rows" if len(rows) > len(shown) else ""
        return format_html(
            '<table class="mt-table"><thead><tr><th>coin</th><th>year</th><th>weight</th><th>front SHA-256</th>'
            '<th>back SHA-256</th></tr></thead><tbody>{}</tbody></table><p class="help">{}</p>',
            body,
            more,
        )
