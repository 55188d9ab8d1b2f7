"""Hyperparameter sweeps: status and progress ("12/40 trials · 7 pruned · best MAE 0.31 y") in the list; on a
sweep's page its trials (read from the Optuna study) and Optuna's plots (from its MLflow parent run), the best
configuration's training run (whose page shows the comparison with Production); Cancel as a list action."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from training.ml import tune
from training.models import Sweep, TrainingRun
from training.services.sweeps import sweep_cancel, sweep_progress, sweep_study

from .base import ReadOnlyAdmin
from .presenters import DASH, STATUS_TONES, admin_url, badge, short_date
from .views.artifacts import ArtifactView

logger = logging.getLogger(__name__)

PLOT_TITLES = {
    "plots/optimization_history.png": "Optimisation history",
    "plots/param_importances.png": "Parameter importances",
    "plots/parallel_coordinate.png": "Parallel coordinates",
}
STATE_TONES = {"complete": "ok", "pruned": "muted", "fail": "bad", "running": "info", "waiting": "muted"}


class SweepArtifactView(ArtifactView):
    """One PNG of the sweep's MLflow parent run (never another run's, never a path outside it)."""

    model = Sweep

    def run_id(self) -> str:
        return self.object.mlflow_run_id

    def get(self, request: HttpRequest, pk: int, artifact: str) -> HttpResponse:
        if artifact not in PLOT_TITLES:
            raise Http404("No such plot.")
        return super().get(request, pk, artifact)


@admin.register(Sweep)
class SweepAdmin(ReadOnlyAdmin):
    """Sweeps as they happen, and what they found."""

    list_display = ("sweep_label", "status_badge", "progress", "best_vs_default", "best_run", "created")
    list_filter = ("status",)
    actions: ClassVar[list[str]] = ["cancel_sweeps"]
    fields = (
        "status_badge",
        "progress",
        "best_vs_default",
        "best_params",
        "best_run",
        "dataset_version",
        "study_name",
        "mlflow_run_id",
        "error",
        "trials_table",
        "plots",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Sweep]:
        return super().get_queryset(request).select_related("training_run", "dataset_version")

    def get_urls(self) -> list[URLPattern]:
        return self.page_urls(("<int:pk>/artifact/<path:artifact>", SweepArtifactView, "artifact")) + super().get_urls()

    @admin.display(description="sweep")
    def sweep_label(self, obj: Sweep) -> str:
        return f"#{obj.pk}"

    @admin.display(description="status")
    def status_badge(self, obj: Sweep) -> SafeString:
        return badge(obj.get_status_display(), STATUS_TONES.get(obj.status, "muted"))

    @admin.display(description="progress")
    def progress(self, obj: Sweep) -> str:
        return sweep_progress(obj).text

    @admin.display(description="best CV MAE vs default")
    def best_vs_default(self, obj: Sweep) -> str:
        if obj.best_value is None:
            return DASH
        default = f"{obj.default_value:.2f} y" if obj.default_value is not None else DASH
        return f"{obj.best_value:.2f} y (trial {obj.best_trial}) vs {default}"

    @admin.display(description="best configuration's run")
    def best_run(self, obj: Sweep) -> SafeString | str:
        run = obj.training_run
        if run is None:
            return DASH
        return format_html(
            '<a href="{}">run #{} ({} {})</a>',
            admin_url(TrainingRun, "change", run.pk),
            run.pk,
            run.get_status_display(),
            run.get_verdict_display(),
        )

    @admin.display(description="created")
    def created(self, obj: Sweep) -> str:
        return short_date(obj.created_at)

    @admin.display(description="trials")
    def trials_table(self, obj: Sweep) -> SafeString | str:
        """Every Optuna trial: its state, CV MAE (or last reported fold MAE when pruned) and parameters."""
        try:
            rows = tune.trials_table(sweep_study(obj))
        except Exception:  # noqa: BLE001 - a study that cannot be read leaves the rest of the page readable
            logger.warning("the study of %s cannot be read", obj, exc_info=True)
            return "The study cannot be read."
        if not rows:
            return DASH
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (
                    row["number"],
                    badge(row["state"], STATE_TONES.get(row["state"], "muted")),
                    DASH if row["value"] is None else f"{row['value']:.2f}",
                    DASH if row["seconds"] is None else f"{row['seconds']:.0f} s",
                    ", ".join(f"{k}={_short(v)}" for k, v in row["params"].items()),
                )
                for row in rows
            ),
        )
        return format_html(
            '<table class="sweep-trials"><thead><tr><th>trial</th><th>state</th><th>CV MAE (y)</th><th>time</th>'
            "<th>parameters</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    @admin.display(description="plots")
    def plots(self, obj: Sweep) -> SafeString | str:
        """Optuna's plots as the MLflow parent run keeps them, fetched by the browser (the page never calls MLflow)."""
        if not obj.mlflow_run_id or obj.finalising_at is None:
            return "The plots are drawn when the sweep ends."
        return format_html_join(
            "",
            '<figure class="sweep-plot"><img src="{}" alt="{}" width="720"><figcaption>{}</figcaption></figure>',
            ((admin_url(Sweep, "artifact", obj.pk, name), title, title) for name, title in PLOT_TITLES.items()),
        )

    @admin.action(description="Cancel selected sweeps")
    def cancel_sweeps(self, request: HttpRequest, queryset: QuerySet[Sweep]) -> None:
        try:
            for sweep in queryset:
                sweep_cancel(sweep=sweep, actor=request.user)
        except PermissionDenied as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.message_user(request, f"{queryset.count()} sweep(s) asked to stop.", messages.SUCCESS)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
