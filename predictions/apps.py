from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Coins and predictions"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (every sign-up joins the collector group)
