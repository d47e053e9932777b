from django.apps import AppConfig


class AiConfig(AppConfig):
    name = "apps.ai"
    label = "ai"

    def ready(self) -> None:
        from .config_cache import connect_signals

        connect_signals()
