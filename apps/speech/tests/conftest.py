"""Speech fixtures: a session-wide clip folder and the Whisper configurations under test.

Each model is loaded once per test session (the engine caches it per process), and clips are
a few seconds long, so the whole speech suite costs a few model passes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from apps.speech.engine import WhisperConfig, get_model


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech-clips")


@pytest.fixture(scope="session")
def base_config() -> WhisperConfig:
    """The multilingual bundled model with the project's settings (the demo default)."""
    config = replace(WhisperConfig.from_settings(), model="base")
    get_model(config)
    return config


@pytest.fixture(scope="session")
def tiny_en_config(base_config: WhisperConfig) -> WhisperConfig:
    config = replace(base_config, model="tiny.en")
    get_model(config)
    return config
