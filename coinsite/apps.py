"""Start-up work of the project itself, which belongs to no app."""

from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.core.signals import setting_changed


class CoinsiteConfig(AppConfig):
    name = "coinsite"
    verbose_name = "Coin site"

    def ready(self) -> None:
        # The embedded default keeps its SQLite database, MLflow store and collected static files under VAR_DIR
        # (whitenoise warns at start-up when STATIC_ROOT is missing). Created when Django starts, not when the
        # settings are imported: importing settings (a tool, a linter, a test) writes nothing to disk.
        for folder in (settings.VAR_DIR, settings.STATIC_ROOT):
            Path(folder).mkdir(parents=True, exist_ok=True)
        from training.ml.photo_limits import install_process_default  # lazy: settings must be configured first

        install_process_default(settings.COINSITE_PHOTO_LIMITS)  # a path that passes no limits still gets these
        setting_changed.connect(_photo_limits_rebuild, dispatch_uid="coinsite-photo-limits")
        from coinsite import checks, lockout  # noqa: F401  (registers the deploy checks, connects the lockout's receivers)


_PHOTO_LIMIT_SETTINGS = {
    "COINSITE_MAX_UPLOAD_BYTES": "max_bytes",
    "COINSITE_MAX_IMAGE_PIXELS": "max_pixels",
    "COINSITE_DECODE_BUDGET_SECONDS": "budget_seconds",
    "COINSITE_DECODE_MEMORY_BYTES": "max_decode_bytes",
}


def _photo_limits_rebuild(*, setting: str, **kwargs) -> None:
    """Keep COINSITE_PHOTO_LIMITS built from the four settings when one is changed at run time (tests do)."""
    if setting not in _PHOTO_LIMIT_SETTINGS:
        return
    from training.ml.photo_limits import PhotoLimits, install_process_default  # lazy: as in ready()

    limits = PhotoLimits(**{field: getattr(settings, name) for name, field in _PHOTO_LIMIT_SETTINGS.items()})
    settings.COINSITE_PHOTO_LIMITS = limits
    install_process_default(limits)
