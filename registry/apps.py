from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects this app's receivers; models must be loaded first)
