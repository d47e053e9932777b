"""Audio decoding with limits: any container/codec FFmpeg (PyAV) reads → 16 kHz mono float32.

WhatsApp voice notes are OGG/Opus; customers also forward MP3, M4A/AAC and WAV files. The limits
are checked as early as possible: the file size before opening it, the container's declared
duration before decoding, and the decoded length while decoding (a declared duration can be
missing or wrong), so an over-long file is rejected without decoding all of it into memory.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from apps.speech.errors import AudioRejected

SAMPLE_RATE = 16_000


def decode_audio(path: Path, *, max_bytes: int, max_duration_s: float) -> np.ndarray:
    """Return the audio of ``path`` as 16 kHz mono float32 samples in [-1, 1].

    Raises ``AudioRejected`` (a permanent, explainable failure) for a missing, empty, over-size,
    over-long, corrupt or audio-less file.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise AudioRejected("audio_missing", "the audio file does not exist") from exc
    if size == 0:
        raise AudioRejected("audio_empty", "the audio file is empty (0 bytes)")
    if size > max_bytes:
        raise AudioRejected(
            "audio_too_large",
            f"the audio file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB",
        )

    max_samples = int(max_duration_s * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioRejected("audio_unsupported", "the file contains no audio track")
            stream = container.streams.audio[0]
            declared = _declared_seconds(container, stream)
            if declared is not None and declared > max_duration_s + 1:
                raise _too_long(declared, max_duration_s)
            resampler = av.audio.resampler.AudioResampler(
                format="s16", layout="mono", rate=SAMPLE_RATE
            )
            for frame in _frames(container):
                frame.pts = None  # the resampler checks timestamps; damaged files break them
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += chunk.size
                if total > max_samples + SAMPLE_RATE:
                    raise _too_long(total / SAMPLE_RATE, max_duration_s, at_least=True)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioRejected:
        raise
    except av.error.DecoderNotFoundError as exc:
        raise AudioRejected("audio_unsupported", f"unsupported audio codec: {exc}") from exc
    except (av.error.FFmpegError, EOFError, ValueError, IndexError) as exc:
        raise AudioRejected(
            "audio_unreadable", f"the audio file cannot be decoded (corrupt or not audio): {exc}"
        ) from exc
    finally:
        # PyAV's resampler keeps native buffers until a collection (faster-whisper issue #390).
        gc.collect()

    if not chunks:
        raise AudioRejected("audio_empty", "the audio file holds no decodable sound")
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0
    if samples.size == 0:
        raise AudioRejected("audio_empty", "the audio file holds no decodable sound")
    if samples.size > max_samples + SAMPLE_RATE // 2:
        raise _too_long(samples.size / SAMPLE_RATE, max_duration_s)
    return samples


def _frames(container: av.container.InputContainer) -> Iterator[av.AudioFrame]:
    """Decoded frames of the first audio stream, skipping frames FFmpeg marks invalid.

    A voice note cut short by a flaky upload has a few damaged packets at the end; dropping them
    keeps the rest of the message. A file that is damaged throughout yields nothing and ends as
    ``audio_empty``/``audio_unreadable``.
    """
    iterator = iter(container.decode(audio=0))
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def _declared_seconds(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _too_long(seconds: float, limit: float, *, at_least: bool = False) -> AudioRejected:
    more = "more than " if at_least else ""
    return AudioRejected(
        "audio_too_long",
        f"the audio lasts {more}{seconds:.0f} s; the limit is {limit:.0f} s",
    )
