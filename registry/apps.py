from django.apps import AppConfig
from django.conf import settings


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects this app's receivers; models must be loaded first)

        if settings.COINSITE_WARM_UP_MODEL:
            # A serving process (`make run`'s runserver, an inference worker) loads the Production model before it
            # takes its first request: the first upload after `make run` used to wait 14.6 s for the load.
            from .serving import warm_up  # lazy: serving imports the ML stack, which only serving processes need

            warm_up()
