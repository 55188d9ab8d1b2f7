"""Training runs as they happen: status, progress, duration, verdict and error; Start training and Cancel."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from registry.models import ModelVersion
from registry.roles import can_train
from training.models import DatasetVersion, TrainingRun
from training.selectors import training_runs_active

from . import actions
from .base import ReadOnlyAdmin
from .presenters import (
    DASH,
    STATUS_TONES,
    admin_url,
    badge,
    fmt_duration,
    pretty_json,
    run_comparison_view,
    run_duration,
    run_progress,
    short_date,
    verdict_badge,
)
from .views import CancelTrainingView, StartTrainingView, SuspectLabelsView

ACTIVE = (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING)


def _model_version(run: TrainingRun) -> ModelVersion | None:
    """The version a run registered; a run that failed, was cancelled or is still going has none."""
    try:
        return run.model_version
    except ObjectDoesNotExist:
        return None


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    """Training runs as they happen: status, progress, duration, verdict and error; Start training and Cancel."""

    # Five columns, so the list fits 1280 px beside the filter bar: the dataset under the run, the duration under the
    # progress (measured: seven columns needed 750 px in a 631 px box).
    list_display = (
        "run_with_data",
        "status_with_error",
        "progress_with_duration",
        "result_display",
        "created_by",
    )
    list_display_links = ("run_with_data",)
    list_filter = ("status", "verdict")
    search_fields = ("=id", "mlflow_run_id", "error")
    actions = [actions.cancel_selected]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "status_badge",
                    "progress_bar",
                    "folds_display",
                    "verdict_display",
                    "model_version_link",
                    "error_display",
                )
            },
        ),
        (
            "When",
            {
                "fields": (
                    "requested_display",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "duration_display",
                    "heartbeat_display",
                    "cancel_requested",
                )
            },
        ),
        (
            "Data and configuration",
            {"fields": ("dataset_display", "evaluation_display", "fine_tune", "mlflow_run_id", "config_display")},
        ),
        ("Metrics", {"fields": ("metrics_display", "comparison_display"), "classes": ("collapse",)}),
    )
    # Every field shown is read-only: a run changes only through its services (start, cancel, the worker).
    readonly_fields = tuple(flatten_fieldsets(fieldsets))

    def get_queryset(self, request: HttpRequest) -> QuerySet[TrainingRun]:
        return (
            super()
            .get_queryset(request)
            .select_related("dataset_version", "evaluation_dataset", "requested_by", "model_version")
            # The frozen manifests (up to 5.9 MB of JSON each) are never shown here: read only where a page needs one.
            .defer("dataset_version__manifest", "evaluation_dataset__manifest")
        )

    def has_train_permission(self, request: HttpRequest) -> bool:
        """The `train` permission the list action names."""
        return can_train(request.user)

    # -- columns --------------------------------------------------------------------------------------------------

    @admin.display(description="run", ordering="id")
    def run_label(self, obj: TrainingRun) -> str:
        if obj.fine_tune:
            return format_html('#{} <span class="mt-badge mt-badge--muted">fine-tune</span>', obj.pk)
        return f"#{obj.pk}"

    @admin.display(description="run", ordering="id")
    def run_with_data(self, obj: TrainingRun) -> str:
        """The run, with the size of its training set as a small second line."""
        if obj.dataset_version is None:
            return self.run_label(obj)
        return format_html(
            '{}<span class="mt-muted mt-small">{} coins</span>', self.run_label(obj), obj.dataset_version.coin_count
        )

    @admin.display(description="progress")
    def progress_with_duration(self, obj: TrainingRun) -> str:
        """The progress bar, with how long the run took (or has been running) as a small second line."""
        duration = run_duration(obj)
        if duration is None:
            return self.progress_bar(obj)
        return format_html(
            '{}<span class="mt-muted mt-small">{}</span>', self.progress_bar(obj), fmt_duration(duration)
        )

    @admin.display(description="status", ordering="status")
    def status_with_error(self, obj: TrainingRun) -> str:
        """The status badge, with the error's last line under it when the run failed."""
        return format_html("{}{}", self.status_badge(obj), self.error_short(obj))

    @admin.display(description="result", ordering="verdict")
    def result_display(self, obj: TrainingRun) -> str:
        if _model_version(obj) is None:
            return verdict_badge(obj.verdict)
        return format_html("{} {}", self.model_version_link(obj), verdict_badge(obj.verdict))

    @admin.display(description="by", ordering="origin")
    def requested_display(self, obj: TrainingRun) -> str:
        """What started the run, as recorded (TrainingRun.origin): the owner's name for Start training."""
        if obj.requested_by is not None:
            return obj.requested_by.get_username()
        return obj.get_origin_display()

    @admin.display(description="created", ordering="created_at")
    def created_by(self, obj: TrainingRun) -> str:
        return format_html(
            '{}<span class="mt-muted mt-small">by {}</span>', short_date(obj.created_at), self.requested_display(obj)
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: TrainingRun) -> str:
        text = obj.get_status_display()
        if obj.cancel_requested and obj.status in ACTIVE:
            text += " (cancelling)"
        return badge(text, STATUS_TONES.get(obj.status, "muted"))

    @admin.display(description="folds")
    def folds_display(self, obj: TrainingRun) -> str:
        """A fold-parallel run's folds: which worker trains each, its epoch and attempts (a fold retried after its
        worker died shows 2)."""
        rows = list(obj.folds.order_by("index").values_list("index", "status", "worker", "epoch", "attempts", "error"))
        if not rows:
            return "trained in one process" if obj.started_at else "—"
        return format_html(
            '<table class="mt-table mt-small"><tr><th>fold</th><th>status</th><th>worker</th><th>epoch</th>'
            "<th>attempts</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (index + 1, status if not error else f"{status}: {error[:80]}", worker or "—", epoch, attempts)
                    for index, status, worker, epoch, attempts, error in rows
                ),
            ),
        )

    @admin.display(description="progress")
    def progress_bar(self, obj: TrainingRun) -> str:
        progress = run_progress(obj)
        if obj.status == TrainingRun.Status.QUEUED:
            return "waiting"
        if not progress["known"] and obj.status != TrainingRun.Status.RUNNING:
            return DASH
        return format_html(
            '<span class="mt-progress mt-progress--{}" title="{}% done{}">'
            '<span class="mt-progress__bar" data-mt-width="{}"></span></span>'
            '<span class="mt-progress__label">{}</span>{}',
            obj.status,
            f"{progress['percent']:.0f}",
            f" · {progress['details']}" if progress["details"] else "",
            f"{progress['percent']:.1f}",
            progress["label"] or f"{progress['percent']:.0f}%",
            format_html('<span class="mt-progress__label mt-progress__details">{}</span>', progress["details"])
            if progress["details"] and obj.status == TrainingRun.Status.RUNNING
            else "",
        )

    @admin.display(description="duration")
    def duration_display(self, obj: TrainingRun) -> str:
        return fmt_duration(run_duration(obj))

    @admin.display(description="last heartbeat")
    def heartbeat_display(self, obj: TrainingRun) -> str:
        return f"{timesince(obj.heartbeat_at)} ago" if obj.heartbeat_at else DASH

    @admin.display(description="dataset", ordering="dataset_version")
    def dataset_display(self, obj: TrainingRun) -> str:
        return self._dataset(obj.dataset_version)

    @admin.display(description="data", ordering="dataset_version")
    def dataset_short(self, obj: TrainingRun) -> str:
        return self._dataset(obj.dataset_version, short=True)

    @admin.display(description="evaluation set")
    def evaluation_display(self, obj: TrainingRun) -> str:
        return self._dataset(obj.evaluation_dataset)

    def _dataset(self, dataset: DatasetVersion | None, *, short: bool = False) -> str:
        """A link to the dataset: "#id · n coins" titled by its hash, or (``short``, the list) "n coins" titled by id."""
        if dataset is None:
            return DASH
        if short:
            title, text = f"dataset #{dataset.pk}, {dataset.coin_count} coins", f"{dataset.coin_count} coins"
        else:
            title, text = dataset.content_hash, f"#{dataset.pk} · {dataset.coin_count} coins"
        return format_html(
            '<a href="{}" title="{}">{}</a>', admin_url(DatasetVersion, "change", dataset.pk), title, text
        )

    @admin.display(description="verdict", ordering="verdict")
    def verdict_display(self, obj: TrainingRun) -> str:
        return verdict_badge(obj.verdict)

    @admin.display(description="model version")
    def model_version_link(self, obj: TrainingRun) -> str:
        version = _model_version(obj)
        if version is None:
            return DASH
        return format_html('<a href="{}">v{}</a>', admin_url(ModelVersion, "change", version.pk), version.version)

    @admin.display(description="error")
    def error_short(self, obj: TrainingRun) -> str:
        if not obj.error:
            return ""
        last = obj.error.strip().splitlines()[-1] if obj.error.strip() else ""
        return format_html(
            '<span class="mt-error mt-error--short" title="{}">{}</span>',
            obj.error[:2000],
            last[:80] + ("…" if len(last) > 80 else ""),
        )

    @admin.display(description="error")
    def error_display(self, obj: TrainingRun) -> str:
        return format_html('<pre class="mt-json mt-error">{}</pre>', obj.error) if obj.error else DASH

    @admin.display(description="config")
    def config_display(self, obj: TrainingRun) -> str:
        return pretty_json(obj.config)

    @admin.display(description="metrics (raw)")
    def metrics_display(self, obj: TrainingRun) -> str:
        return pretty_json(obj.metrics)

    @admin.display(description="comparison (raw)")
    def comparison_display(self, obj: TrainingRun) -> str:
        return pretty_json(obj.comparison)

    # -- pages ----------------------------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        return (
            self.page_urls(
                ("start/", StartTrainingView, "start"),
                ("<int:pk>/cancel/", CancelTrainingView, "cancel"),
                ("suspect-labels/", SuspectLabelsView, "suspects"),
            )
            + super().get_urls()
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_train": can_train(request.user),
            "autorefresh": training_runs_active().exists(),
        }
        return super().changelist_view(request, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        run = self.get_object(request, object_id)
        extra_context = {**(extra_context or {}), "can_train": can_train(request.user), "show_save": False}
        if run is not None:
            extra_context.update(
                run=run,
                cancellable=run.status in ACTIVE,
                autorefresh=run.status in ACTIVE,
                comparison=run_comparison_view(run),
                title=str(run),
            )
        return super().change_view(request, object_id, form_url, extra_context)
