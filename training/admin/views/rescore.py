"""Re-scoring after a promotion: choose the coins to predict again with Production, then the curators' work list of
coins whose predicted year moved most."""

from __future__ import annotations

import logging
from typing import ClassVar

from django.contrib import messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from predictions.roles import can_review
from registry.models import ModelVersion
from registry.roles import can_promote
from registry.selectors import production_model_version
from training.selectors import (
    coins_rescore_candidates,
    coins_verified_years,
    model_version_last_rescored,
    model_versions_newest_first,
    rescore_movers,
)
from training.services.rescore import coins_rescore, rescore_progress

from .. import actions
from ..forms import RescoreForm
from ..presenters import admin_url, mover_row
from .base import AdminPageView, rollback_target

logger = logging.getLogger(__name__)

# How many of the newest versions the movers page looks through for the one the owner last re-scored.
MOVERS_LOOKBACK = 20


class RescoreView(AdminPageView):
    """Choose coins (stale, all, one version's, by id) and queue their re-prediction with Production."""

    template_name = "admin/{app_label}/{model_name}/rescore.html"
    title = "Re-score coins with Production"

    role = staticmethod(can_promote)

    def get(self, request: HttpRequest) -> TemplateResponse:
        initial = {"scope": "version", "version": request.GET["version"]} if request.GET.get("version") else {}
        return self.page(request, RescoreForm(initial=initial))

    def post(self, request: HttpRequest) -> HttpResponse:
        form = RescoreForm(request.POST)
        if not form.is_valid():
            return self.page(request, form)
        coin_ids = form.coin_ids_selected()
        if not coin_ids:
            messages.warning(request, "No coin matches that choice; nothing was re-scored.")
            return self.page(request, form)
        done, count = actions.call_service(request, "Re-scoring", coins_rescore, coin_ids=coin_ids)
        if not done:
            return self.page(request, form)
        messages.success(
            request,
            f"Re-scoring {count} coin{'s' if count != 1 else ''} with {production_model_version() or 'Production'} "
            "(in the background); the coins whose year moved most appear here as their new predictions come in.",
        )
        previous = rollback_target()
        since = f"?since={previous.version}" if previous else ""
        return HttpResponseRedirect(admin_url(ModelVersion, "movers") + since)

    def page(self, request: HttpRequest, form: RescoreForm) -> TemplateResponse:
        counts = {
            "predicted": coins_rescore_candidates(scope="all").count(),
            "stale": coins_rescore_candidates(scope="stale").count(),
        }
        return self.render(
            request, form=form, production=production_model_version(), counts=counts, progress=rescore_progress()
        )


class MoversView(AdminPageView):
    """Coins whose predicted year moved most with the new version: the curators' work list after a re-score."""

    template_name = "admin/{app_label}/{model_name}/movers.html"
    title = "Coins whose year moved most"
    http_method_names: ClassVar[list[str]] = ["get", "head"]

    def has_permission(self, request: HttpRequest) -> bool:
        return can_review(request.user) or can_promote(request.user)

    def get(self, request: HttpRequest) -> TemplateResponse:
        versions = model_versions_newest_first()
        since = self.since(request, versions)
        rows, error = [], ""
        if since is not None:
            try:
                movers = rescore_movers(since_version=since.version)
                verified = coins_verified_years(coin_ids=[mover["coin_id"] for mover in movers])
                rows = [mover_row(mover, verified_year=verified.get(mover["coin_id"])) for mover in movers]
            except Exception as exc:  # noqa: BLE001 - a list page must render; the reason is shown
                logger.exception("rescore_movers failed")
                error = actions.error_text(exc)
        return self.render(
            request,
            rows=rows,
            since=since,
            production=production_model_version(),
            versions=versions,
            error=error,
            can_promote=can_promote(request.user),
        )

    @staticmethod
    def since(request: HttpRequest, versions: QuerySet[ModelVersion]) -> ModelVersion | None:
        """The version of ?since=, else the newest one whose coins a later version re-scored (what the owner just
        did), else the one a rollback would restore, else the second newest."""
        number = request.GET.get("since")
        if number:
            since = versions.filter(version=int(number)).first() if number.isdigit() else None
            if since is None:
                raise Http404("No such model version.")
            return since
        return (
            model_version_last_rescored(versions=versions[:MOVERS_LOOKBACK])
            or rollback_target()
            or next(iter(versions[1:2]), None)
        )
