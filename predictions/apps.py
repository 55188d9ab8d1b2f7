from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Coins and predictions"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects this app's receivers; models must be loaded first)
