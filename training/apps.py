from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Models and training"

    def ready(self) -> None:
        from predictions.housekeeping import timer_job_add  # lazy: apps are not loaded when this module is imported

        from . import receivers  # noqa: F401  (connects this app's receivers; models must be loaded first)
        from .services.monitoring_snapshot import monitoring_snapshots_refresh  # lazy: it imports models

        # The embedded default has no beat: its housekeeping timer refreshes the monitoring figures instead, so the
        # owners' first view after uploads finds them computed (with a broker, beat's monitoring_refresh_task does).
        timer_job_add(monitoring_snapshots_refresh)
