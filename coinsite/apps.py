"""Start-up work of the project itself, which belongs to no app."""

from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class CoinsiteConfig(AppConfig):
    name = "coinsite"
    verbose_name = "Coin site"

    def ready(self) -> None:
        # The embedded default keeps its SQLite database, MLflow store and collected static files under VAR_DIR
        # (whitenoise warns at start-up when STATIC_ROOT is missing). Created when Django starts, not when the
        # settings are imported: importing settings (a tool, a linter, a test) writes nothing to disk.
        for folder in (settings.VAR_DIR, settings.STATIC_ROOT):
            Path(folder).mkdir(parents=True, exist_ok=True)
        from training.ml.photo_limits import install_process_default

        install_process_default(settings.COINSITE_PHOTO_LIMITS)  # a path that passes no limits still gets these
        from coinsite import lockout  # noqa: F401  (connects the sign-in lockout's receivers; needs loaded apps)
