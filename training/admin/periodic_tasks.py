"""The schedule (django-celery-beat's periodic tasks), with what its own admin does not say: whether any scheduler
runs these tasks here (training.services.schedule.scheduler_status), and on the form the chosen crontab in words.

django-celery-beat's PeriodicTaskAdmin is kept (its form, actions and crontab words); this subclass only adds the
status to the list and the form, through templates of this app.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from training.services.schedule import scheduler_status

from .base import ASSETS
from .presenters import inline_code

admin.site.unregister(PeriodicTask)


def _status_context() -> dict[str, Any]:
    status = scheduler_status()
    return {"scheduler": status, "scheduler_detail": inline_code(status.detail)}


@admin.register(PeriodicTask)
class ScheduleAdmin(PeriodicTaskAdmin):
    """Periodic tasks, saying above them whether a scheduler runs them and what to start when none does."""

    change_list_template = "admin/training/periodictask/change_list.html"
    change_form_template = "admin/training/periodictask/change_form.html"

    @property
    def media(self):
        return super().media + ASSETS

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), **_status_context()})

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), **_status_context()}
        return super().changeform_view(request, object_id, form_url, extra_context)
