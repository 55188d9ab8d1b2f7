"""Suspect labels: the curators' second look at verified years that held-out models contradict with confidence
(training.services.label_check). Each row opens the coin on the review desk, where confirming or correcting it is
an ordinary decision (predictions.review); a coin decided again leaves the list."""

from __future__ import annotations

from typing import ClassVar

from django.http import HttpRequest
from django.template.response import TemplateResponse

from predictions.roles import can_review
from registry.roles import can_promote
from training.services.label_check import suspect_labels_find

from ..presenters import suspect_rows
from .base import AdminPageView

LIMIT_CHOICES = (50, 100, 200, 500)
DEFAULT_LIMIT = 100


class SuspectLabelsView(AdminPageView):
    """The ranked suspects of the newest training run that kept held-out answers (?limit= rows)."""

    template_name = "admin/{app_label}/{model_name}/suspect_labels.html"
    title = "Suspect labels"
    http_method_names: ClassVar[list[str]] = ["get", "head"]

    def has_permission(self, request: HttpRequest) -> bool:
        """Curators re-check the labels; model owners look at what their training data holds."""
        return can_review(request.user) or can_promote(request.user)

    def get(self, request: HttpRequest) -> TemplateResponse:
        limit = request.GET.get("limit", "")
        limit = int(limit) if limit.isdigit() and int(limit) in LIMIT_CHOICES else DEFAULT_LIMIT
        report = suspect_labels_find(limit=limit)
        return self.render(
            request,
            report=report,
            rows=suspect_rows(report.suspects),
            limit=limit,
            limit_choices=LIMIT_CHOICES,
            can_review=can_review(request.user),
            can_promote=can_promote(request.user),
        )
