"""The steps every custom page of the training admin takes, written once: allowed method, role, the object of the
URL, and the admin's chrome around the template."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.views import View

from registry.models import ModelVersion
from registry.selectors import production_history
from training.selectors import model_version_get

logger = logging.getLogger(__name__)


class AdminPageView(View):
    """A page a ModelAdmin adds to its URLs (`AView.as_view(model_admin=self)`, wrapped in `admin_site.admin_view`,
    which already sent anonymous visitors and non-staff to the login).

    `dispatch` answers, in this order: a method the page does not take (405, so a GET never reaches a POST-only
    button's work), a user without the page's role (403), a pk that names no `model` row (404); then `get`/`post`
    run with `self.object` set. `render` puts a template inside the admin's chrome (side bar, breadcrumbs, user
    tools, the ModelAdmin's media).
    """

    model_admin: admin.ModelAdmin | None = None
    model: ClassVar[type[Model] | None] = None  # the row a <pk> in the URL names
    template_name: ClassVar[str] = ""  # "{app_label}" and "{model_name}" are those of the ModelAdmin's model
    title: ClassVar[str] = ""
    http_method_names: ClassVar[list[str]] = ["get", "head", "post"]

    object: Model | None = None

    # the role check of the page (registry.roles / predictions.roles), e.g. `role = staticmethod(can_promote)`
    role: ClassVar[Callable[[Any], bool]]

    def has_permission(self, request: HttpRequest) -> bool:
        """Whether the user's role may use this page."""
        return self.role(request.user)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            return self.http_method_not_allowed(request, *args, **kwargs)
        if not self.has_permission(request):
            raise PermissionDenied
        if self.model is not None and "pk" in kwargs:
            self.object = get_object_or_404(self.model, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def render(self, request: HttpRequest, **context: Any) -> TemplateResponse:
        """The page's template with the admin's context; `context` may override the title."""
        opts = self.model_admin.opts
        return TemplateResponse(
            request,
            self.template_name.format(app_label=opts.app_label, model_name=opts.model_name),
            {
                **self.model_admin.admin_site.each_context(request),
                "opts": opts,
                "title": self.title,
                "media": self.model_admin.media,
                **context,
            },
        )


def rollback_target() -> ModelVersion | None:
    """The version a rollback would put back (the one that served before the current Production), if any."""
    try:
        stack = production_history()
    except Exception:  # noqa: BLE001 - only a hint on a button: the page renders without it
        logger.warning("could not read the production history", exc_info=True)
        return None
    if len(stack) < 2:
        return None
    return model_version_get(version=stack[-2])
