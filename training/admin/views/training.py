"""Start training and Cancel: the model owners' two ways to touch the training queue."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from registry.roles import can_train
from registry.selectors import production_model_version
from training.models import TrainingRun
from training.selectors import training_runs_active
from training.services.background import RunDispatch, training_in_background_enabled, training_run_dispatch
from training.services.runs import training_run_start

from .. import actions
from ..forms import StartTrainingForm
from ..presenters import admin_url
from .base import AdminPageView

# The config file is shown beside the form for reference; more than this is not read on a page.
CONFIG_PREVIEW_CHARS = 5000


def _default_config_text() -> str:
    try:
        return Path(settings.TRAINING_CONFIG_PATH).read_text(encoding="utf-8")[:CONFIG_PREVIEW_CHARS]
    except OSError:
        return ""


class StartTrainingView(AdminPageView):
    """Queue a training run with --set overrides (optionally a fine-tune of Production), then follow it."""

    template_name = "admin/{app_label}/{model_name}/start.html"
    title = "Start training"

    role = staticmethod(can_train)

    def get(self, request: HttpRequest) -> TemplateResponse:
        return self.page(request, StartTrainingForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = StartTrainingForm(request.POST)
        if not form.is_valid():
            return self.page(request, form)
        try:
            run = training_run_start(
                requested_by=request.user,
                overrides=form.cleaned_data["overrides"],
                fine_tune=form.cleaned_data["fine_tune"],
            )
        except ValidationError as error:
            form.add_service_error(error)
        except actions.EXPECTED_ERRORS as error:
            form.add_error(None, actions.error_text(error))
        else:
            level, text = start_message(run.pk)
            messages.add_message(request, level, text)
            return HttpResponseRedirect(admin_url(TrainingRun, "change", run.pk))
        return self.page(request, form)

    def page(self, request: HttpRequest, form: StartTrainingForm) -> TemplateResponse:
        return self.render(
            request,
            form=form,
            active_runs=list(training_runs_active()),
            default_config=_default_config_text(),
            auto_promote=settings.AUTO_PROMOTE,
            eager=settings.CELERY_TASK_ALWAYS_EAGER,
            background=training_in_background_enabled(),
            production=production_model_version(),
        )


def start_message(run_id: int) -> tuple[int, str]:
    """What the banner after Start training says: where the run really went (the message level and its text)."""
    dispatch, run, holder = training_run_dispatch(run_id=run_id)
    name = f"Training run #{run.pk}"
    if dispatch == RunDispatch.BACKGROUND:
        return messages.SUCCESS, (
            f"{name} started in the background of this server (no task broker is configured); this page follows its "
            "progress, and Cancel stops it."
        )
    if dispatch == RunDispatch.WAITING:
        if holder is None:
            return messages.INFO, f"{name} is queued: it starts in the background of this server when the lock is free."
        return messages.INFO, (
            f"{name} is queued behind {holder}: it starts in the background of this server when that one ends."
        )
    if dispatch == RunDispatch.WORKERS:
        return messages.SUCCESS, f"{name} queued for the training workers (queue `training`); this page follows it."
    tone = messages.SUCCESS if run.status == TrainingRun.Status.SUCCEEDED else messages.WARNING
    return tone, f"{name} already ended: {run.get_status_display().lower()}."


class CancelTrainingView(AdminPageView):
    """Cancel the run of the URL (queued: at once; running: at its next check), then show it."""

    model = TrainingRun
    http_method_names: ClassVar[list[str]] = ["post"]

    role = staticmethod(can_train)

    def post(self, request: HttpRequest, pk: int) -> HttpResponseRedirect:
        actions.cancel(request, self.object)
        return HttpResponseRedirect(admin_url(TrainingRun, "change", self.object.pk))
