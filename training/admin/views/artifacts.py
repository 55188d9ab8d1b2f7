"""The MLflow plots of a version's run: the detail page lists them, this view streams each one to the browser."""

from __future__ import annotations

import logging
import mimetypes
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from django.http import Http404, HttpRequest, HttpResponse

from registry import gateway
from registry.models import ModelVersion
from training.ml import tracking

from ..presenters import admin_url
from .base import AdminPageView

logger = logging.getLogger(__name__)


def _version_run_id(version: ModelVersion) -> str:
    return version.run_id or (version.training_run.mlflow_run_id if version.training_run else "")


def plot_paths() -> list[str]:
    """The PNGs every training run logs: learning curves and error by decade (shown wide), then predicted vs true."""
    return [tracking.LEARNING_CURVES_PNG, tracking.ERROR_BY_DECADE_PNG, tracking.PRED_VS_TRUE_PNG]


def version_plots(version: ModelVersion) -> dict[str, Any]:
    """The run's plots as URLs of ArtifactView. The page itself never calls MLflow (a tracking server that is down
    would hang it on retries); each image is fetched by the browser, and a missing one shows a placeholder."""
    if not _version_run_id(version):
        return {"items": [], "error": "This version has no MLflow run id, so there are no plots to show."}
    items = [
        {
            "path": artifact,
            "title": PurePosixPath(artifact).stem.replace("_", " ").replace("-", " "),
            "url": admin_url(ModelVersion, "artifact", version.pk, artifact),
            "wide": any(word in artifact.lower() for word in ("learning", "curve", "decade")),
        }
        for artifact in plot_paths()
    ]
    return {"items": items, "error": ""}


class ArtifactView(AdminPageView):
    """Streams one PNG artifact of the version's own run (never another run's, never a path outside it)."""

    model = ModelVersion
    http_method_names: ClassVar[list[str]] = ["get", "head"]

    def has_permission(self, request: HttpRequest) -> bool:
        return self.model_admin.has_view_permission(request)

    def run_id(self) -> str:
        """The MLflow run whose artifacts this page may stream (a sweep's page: its parent run)."""
        return _version_run_id(self.object)

    def get(self, request: HttpRequest, pk: int, artifact: str) -> HttpResponse:
        run_id = self.run_id()
        parts = PurePosixPath(artifact).parts
        if (
            not run_id
            or not parts
            or ".." in parts
            or artifact.startswith("/")
            or not artifact.lower().endswith(".png")
        ):
            raise Http404("No such plot.")
        with tempfile.TemporaryDirectory(prefix="coinsite-admin-artifact-") as folder:
            try:
                local = Path(gateway.artifact_download(run_id, artifact, dst_path=folder))
                data = local.read_bytes() if local.is_file() else None
            except Exception as error:  # noqa: BLE001 - missing artifact or MLflow down: a 404, not a 500
                logger.info("artifact %s of run %s not available: %s", artifact, run_id, error)
                raise Http404("This plot is not available.") from error
        if data is None:
            raise Http404("This plot is not available.")
        response = HttpResponse(data, content_type=mimetypes.guess_type(artifact)[0] or "image/png")
        response["Cache-Control"] = "private, max-age=3600"  # artifacts of a finished run never change
        response["X-Content-Type-Options"] = "nosniff"
        return response
