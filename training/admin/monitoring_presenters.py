"""The monitoring page's figures and rows: training.services.monitoring's typed report turned into PNGs (drawn by
training.ml.plots) and table cells. Nothing here queries the database.

The PNGs go into the page as data: URLs (the Content-Security-Policy allows data: images): one page load computes
the report once, where a separate image URL per figure would compute it again for every image. At 80 dpi the two
figures weigh about 70 KB together and take 0.6-0.8 s to draw on the 2-core development machine, so they are kept
in the cache under a digest of what they show: a reload draws nothing until a prediction, a label or a promotion
changes a figure.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.core.cache import cache
from django.utils import timezone
from matplotlib.figure import Figure

from training.ml.plots import ServingBand, WeeklyPanel, series_colors, weekly_figure
from training.services.monitoring import Accuracy, MonitoringReport, VersionMonitoring, WeekDrift
from training.services.photo_stats import SMD_LARGE, SMD_NOTABLE

from .presenters import DASH, fmt_number, fmt_share

FIGURE_DPI = 80
FIGURES_CACHE_SECONDS = 24 * 3600


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


def monitoring_figures(report: MonitoringReport) -> list[FigureImage]:
    """Live accuracy (MAE beside the cross-validated MAE, exact years, interval coverage) and rejections with input
    drift, one line per version, the serving periods shaded behind; from the cache when the same report was drawn."""
    digest = hashlib.sha256(repr((report.weeks, report.versions, report.serving)).encode()).hexdigest()
    key = f"coinsite:monitoring-figures:{digest}"
    figures = cache.get(key)
    if figures is None:
        figures = _draw(report)
        cache.set(key, figures, FIGURES_CACHE_SECONDS)
    return figures


def _draw(report: MonitoringReport) -> list[FigureImage]:
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


def accuracy_cells(row: Accuracy | None) -> dict[str, str]:
    """One Accuracy as table cells."""
    if row is None:
        return {key: DASH for key in ("predictions", "rejected", "verified", "mae", "exact", "coverage")}
    return {
        "predictions": str(row.predictions),
        "rejected": fmt_share(row.rejection_rate),
        "verified": str(row.verified),
        "mae": fmt_number(row.mae, 2),
        "exact": fmt_share(row.exact_rate),
        "coverage": fmt_share(row.coverage),
    }


def drift_cells(row: WeekDrift | None) -> dict[str, Any]:
    """One week's drift as table cells: the figure, the statistic that moved most, how many photos it rests on."""
    if row is None or row.worst is None:
        sampled = f"{row.sampled} of {row.served}" if row is not None else DASH
        return {"score": DASH, "worst": DASH, "level": "", "sampled": sampled, "brightness": DASH, "psi": DASH}
    worst = row.worst
    brightness = next((item for item in row.features if item.feature == "brightness"), None)
    return {
        "score": f"{row.score:.2f}",
        "worst": f"{worst.feature} {worst.serving_mean:.3f} vs {worst.training_mean:.3f} ({worst.smd:+.2f})",
        "level": row.level,
        "sampled": f"{row.sampled} of {row.served}",
        "brightness": f"{brightness.serving_mean:.3f} / {brightness.training_mean:.3f}" if brightness else DASH,
        "psi": f"{brightness.psi:.2f}" if brightness else DASH,
    }


def version_rows(report: MonitoringReport) -> list[dict[str, Any]]:
    """The summary table: one row per version, the whole window."""
    return [
        {
            "version": version,
            "cv_mae": fmt_number(version.cv_mae, 2),
            **accuracy_cells(version.overall),
            "drift": drift_cells(version.latest_drift),
        }
        for version in report.versions
    ]


def week_rows(report: MonitoringReport, version: VersionMonitoring) -> list[dict[str, Any]]:
    """The selected version's weeks, newest first."""
    weeks = sorted({row.week for row in version.weeks} | {row.week for row in version.drift}, reverse=True)
    return [
        {"week": week, **accuracy_cells(version.week(week)), "drift": drift_cells(version.drift_week(week))}
        for week in weeks
    ]
