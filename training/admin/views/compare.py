"""Compare any two registered versions side by side (as MLflow's run comparison lets one pick any two): metrics,
error by decade, plots and the coins whose answer moved, on one frozen evaluation set. The numbers come from
training.services.comparison.model_versions_compare; this view parses the choice and draws."""

from __future__ import annotations

import logging
from typing import ClassVar

from django.conf import settings
from django.http import HttpRequest
from django.template.response import TemplateResponse

from registry.roles import can_promote
from registry.selectors import production_model_version
from training.schemas import VersionPair
from training.services.comparison import model_versions_compare

from .. import actions
from ..forms import CompareVersionsForm
from ..presenters import version_pair_view
from .artifacts import plot_paths, version_plots
from .base import AdminPageView

logger = logging.getLogger(__name__)


class CompareVersionsView(AdminPageView):
    """?a=<pk>&b=<pk>&evaluation=<pk>: version B against version A on the evaluation set; without a choice, the form
    with Production as A and the newest other version as B."""

    template_name = "admin/training/compare_versions.html"
    title = "Compare two versions"
    http_method_names: ClassVar[list[str]] = ["get", "head"]

    role = staticmethod(can_promote)

    def get(self, request: HttpRequest) -> TemplateResponse:
        name = settings.MLFLOW_MODEL_NAME
        chosen = {key: request.GET[key] for key in ("a", "b", "evaluation") if request.GET.get(key)}
        form = CompareVersionsForm(chosen or None, name=name, initial=self._initial(name))
        pair, plots, error = None, [], ""
        if chosen and form.is_valid():
            a, b = form.cleaned_data["a"], form.cleaned_data["b"]
            try:
                pair = VersionPair.from_dict(
                    model_versions_compare(base=a.version, other=b.version, evaluation=form.cleaned_data["evaluation"])
                )
            except Exception as exc:  # noqa: BLE001 - a version MLflow cannot load: the page says why
                logger.exception("comparing v%s and v%s failed", a.version, b.version)
                error = actions.error_text(exc)
            plots = self._plots(a, b)
        return self.render(
            request,
            form=form,
            pair=version_pair_view(pair) if pair is not None else None,
            plots=plots,
            error=error,
            no_evaluation=not form.fields["evaluation"].queryset.exists(),
        )

    @staticmethod
    def _initial(name: str) -> dict:
        """Production as A and the newest other version as B (the usual question: is the newest one better?)."""
        form = CompareVersionsForm(name=name)
        versions = list(form.fields["a"].queryset[:20])
        production = production_model_version(name=name)
        base = production or (versions[1] if len(versions) > 1 else None)
        other = next((version for version in versions if version != base), None)
        evaluation = form.fields["evaluation"].queryset.first()
        return {"a": base, "b": other, "evaluation": evaluation}

    @staticmethod
    def _plots(a, b) -> list[dict]:
        """Each plot of the two runs side by side: [{title, a: item | None, b: item | None}]."""
        by_version = [{item["path"]: item for item in version_plots(v)["items"]} for v in (a, b)]
        rows = []
        for path in plot_paths():
            left, right = by_version[0].get(path), by_version[1].get(path)
            if left or right:
                rows.append({"title": (left or right)["title"], "a": left, "b": right})
        return rows
