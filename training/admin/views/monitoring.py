"""The owners' monitoring page: how each version does on the coins it served (accuracy on coins verified later,
rejections, input drift by week) beside which version served when."""

from __future__ import annotations

import logging
from typing import ClassVar

from django.http import HttpRequest
from django.template.response import TemplateResponse

from registry.roles import can_promote
from training.selectors import promotions_latest
from training.services.monitoring import MonitoringReport, VersionMonitoring
from training.services.monitoring_snapshot import (
    default_weeks,
    monitoring_figures_get,
    monitoring_refresh_request,
    refresh_seconds,
)

from ..monitoring_presenters import figures_age, version_rows, week_rows
from ..presenters import promotion_timeline
from .base import AdminPageView

logger = logging.getLogger(__name__)

WEEK_CHOICES = (4, 8, 12, 26, 52)
TIMELINE_PERIODS = 30


def _selected(report: MonitoringReport, number: str | None) -> VersionMonitoring | None:
    """The version of ?version=, else Production, else the newest shown."""
    if number and number.isdigit() and report.get(int(number)) is not None:
        return report.get(int(number))
    return next((item for item in report.versions if item.is_production), None) or next(iter(report.versions), None)


class MonitoringView(AdminPageView):
    """Live accuracy and input drift of every version that served in the last weeks (?weeks=, ?version=).

    Reads the figures a background refresh stored (training.services.monitoring_snapshot) and says how old they are;
    figures older than MONITORING_REFRESH_SECONDS are refreshed in the background, never in this request.
    """

    template_name = "admin/{app_label}/{model_name}/monitoring.html"
    title = "Live accuracy and input drift"
    http_method_names: ClassVar[list[str]] = ["get", "head"]

    role = staticmethod(can_promote)

    def get(self, request: HttpRequest) -> TemplateResponse:
        weeks = request.GET.get("weeks", "")
        weeks_shown = int(weeks) if weeks.isdigit() and int(weeks) in WEEK_CHOICES else default_weeks()
        stored = monitoring_figures_get(weeks=weeks_shown)
        if stored.stale and not stored.refreshing and monitoring_refresh_request(weeks=weeks_shown):
            stored = monitoring_figures_get(weeks=weeks_shown)  # refreshed already when it ran in this process
        report = stored.report
        selected = _selected(report, request.GET.get("version")) if report is not None else None
        return self.render(
            request,
            report=report,
            stored=stored,
            age=figures_age(stored),
            refresh_minutes=max(1, round(refresh_seconds() / 60)),
            autorefresh=report is None,
            figures=stored.figures,
            rows=version_rows(report) if report is not None else [],
            selected=selected,
            week_rows=week_rows(report, selected) if selected else [],
            week_choices=WEEK_CHOICES,
            weeks=weeks_shown,
            timeline=promotion_timeline(promotions_latest(limit=TIMELINE_PERIODS)),
        )
