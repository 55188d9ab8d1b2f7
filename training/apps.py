from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Models and training"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects this app's receivers; models must be loaded first)
