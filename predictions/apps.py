from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Coins and predictions"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects this app's receivers; models must be loaded first)
        from .housekeeping import timer_start_if_enabled  # lazy: imports settings-dependent code after apps load

        timer_start_if_enabled()
