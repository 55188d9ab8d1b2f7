"""The Promote and Roll back buttons: POST only, model owners only, then back to the version that serves."""

from __future__ import annotations

from typing import ClassVar

from django.http import HttpRequest, HttpResponseRedirect

from registry.models import ModelVersion
from registry.roles import can_promote
from registry.selectors import production_model_version

from .. import actions
from ..presenters import admin_url
from .base import AdminPageView


class PromoteView(AdminPageView):
    """Make the version of the URL Production, and come back to its page with what happened."""

    model = ModelVersion
    http_method_names: ClassVar[list[str]] = ["post"]

    role = staticmethod(can_promote)

    def post(self, request: HttpRequest, pk: int) -> HttpResponseRedirect:
        actions.promote(request, self.object)
        return HttpResponseRedirect(admin_url(ModelVersion, "change", self.object.pk))


class RollbackView(AdminPageView):
    """Put back the version that served before, and show the page of whichever version serves afterwards."""

    http_method_names: ClassVar[list[str]] = ["post"]

    role = staticmethod(can_promote)

    def post(self, request: HttpRequest) -> HttpResponseRedirect:
        actions.roll_back(request)
        production = production_model_version()
        if production is None:
            return HttpResponseRedirect(admin_url(ModelVersion, "changelist"))
        return HttpResponseRedirect(admin_url(ModelVersion, "change", production.pk))
