"""The monitoring page's two figures, drawn by training.ml.plots from the typed report
(training.services.monitoring): computed with the report in the background (training.services.monitoring_snapshot)
and stored with it as PNG data: URLs (the Content-Security-Policy allows data: images).

At 80 dpi the two figures weigh about 70 KB together and take 0.6-0.8 s to draw on the 2-core development machine,
so a refresh redraws them only when what they show changed (figures_digest).
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from datetime import date

from django.utils import timezone
from matplotlib.figure import Figure

from training.ml.plots import ServingBand, WeeklyPanel, series_colors, weekly_figure

from .monitoring import MonitoringReport, VersionMonitoring
from .photo_stats import SMD_LARGE, SMD_NOTABLE

FIGURE_DPI = 80


@dataclass(frozen=True)
class FigureImage:
    title: str
    uri: str  # data:image/png;base64,...
    alt: str


def figure_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _by_week(report: MonitoringReport, version: VersionMonitoring, value) -> list[float | None]:
    """One value per week of the report (None where the version has none that week)."""
    return [value(version, week) for week in report.weeks]


def _accuracy(name: str):
    def read(version: VersionMonitoring, week: date) -> float | None:
        row = version.week(week)
        return getattr(row, name) if row is not None else None

    return read


def _drift_score(version: VersionMonitoring, week: date) -> float | None:
    row = version.drift_week(week)
    return row.score if row is not None else None


def _served_brightness(version: VersionMonitoring, week: date) -> float | None:
    row = version.drift_week(week)
    feature = next((item for item in row.features if item.feature == "brightness"), None) if row else None
    return feature.serving_mean if feature is not None else None


def _training_brightness(version: VersionMonitoring) -> float | None:
    for row in version.drift:
        for feature in row.features:
            if feature.feature == "brightness":
                return feature.training_mean
    return None


def figures_digest(report: MonitoringReport) -> str:
    """What the figures show (weeks, versions, serving periods): equal digests draw equal figures."""
    return hashlib.sha256(repr((report.weeks, report.versions, report.serving)).encode()).hexdigest()


def monitoring_figures_draw(report: MonitoringReport) -> list[FigureImage]:
    """Live accuracy (MAE beside the cross-validated MAE, exact years, interval coverage) and rejections with input
    drift, one line per version, the serving periods shaded behind."""
    versions = list(reversed(report.versions))  # oldest first: colours in release order
    colors = series_colors(version.label for version in versions)
    serving = [
        ServingBand(
            label=f"v{period.version}",
            start=timezone.localtime(period.start),
            end=timezone.localtime(period.end) if period.end else None,
        )
        for period in report.serving
    ]

    def lines(read) -> dict[str, list[float | None]]:
        return {version.label: _by_week(report, version, read) for version in versions}

    accuracy = weekly_figure(
        report.weeks,
        [
            WeeklyPanel(
                "MAE on coins verified later",
                "years",
                lines(_accuracy("mae")),
                references={version.label: version.cv_mae for version in versions if version.cv_mae is not None},
            ),
            WeeklyPanel("Exact year", "share", lines(_accuracy("exact_rate")), percent=True),
            WeeklyPanel("Verified year inside the interval", "share", lines(_accuracy("coverage")), percent=True),
        ],
        serving=serving,
        colors=colors,
        title="Live accuracy by week of the prediction (dashed: cross-validated MAE)",
    )
    drift = weekly_figure(
        report.weeks,
        [
            WeeklyPanel("Photos rejected", "share", lines(_accuracy("rejection_rate")), percent=True),
            WeeklyPanel(
                "Input drift: largest |SMD| of the photo statistics",
                "standardised mean difference",
                lines(_drift_score),
                guides=[(SMD_NOTABLE, "notable"), (SMD_LARGE, "large")],
            ),
            WeeklyPanel(
                "Mean brightness of the photos served",
                "luma 0..1",
                lines(_served_brightness),
                references={
                    version.label: value for version in versions if (value := _training_brightness(version)) is not None
                },
            ),
        ],
        serving=serving,
        colors=colors,
        title="Rejections and input drift by week (dashed: the version's training photos)",
    )
    return [
        FigureImage(
            "Live accuracy",
            figure_uri(accuracy),
            "Weekly MAE, exact-year rate and interval coverage of each version on coins verified after it predicted them",
        ),
        FigureImage(
            "Rejections and input drift",
            figure_uri(drift),
            "Weekly rejection rate, input drift and mean brightness of the photos each version served",
        ),
    ]
