from django.apps import AppConfig


class SpeechConfig(AppConfig):
    # No models: the app is installed for its management command (whisper_prepare) only.
    name = "apps.speech"
    label = "speech"
