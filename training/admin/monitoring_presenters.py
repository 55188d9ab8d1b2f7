"""The monitoring page's table rows: training.services.monitoring's typed report turned into cells. Nothing here
queries the database or draws (the figures are drawn in the background with the report:
training.services.monitoring_figures)."""

from __future__ import annotations

from typing import Any

from django.utils.timesince import timesince

from training.services.monitoring import Accuracy, MonitoringReport, VersionMonitoring, WeekDrift
from training.services.monitoring_snapshot import MonitoringFigures

from .presenters import DASH, fmt_number, fmt_share


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


def figures_age(stored: MonitoringFigures) -> str:
    """How old the figures are, in words ("3 minutes", "less than a minute"); empty when none are stored."""
    age = stored.age
    if age is None:
        return ""
    if age.total_seconds() < 60:
        return "less than a minute"
    return timesince(stored.computed_at)
