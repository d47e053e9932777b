"""Settings fail at start-up, naming the variable, when a value is malformed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from eva import env

ROOT = Path(__file__).resolve().parents[2]


def load_settings(**overrides: str) -> subprocess.CompletedProcess[str]:
    environment = os.environ | {"DJANGO_SETTINGS_MODULE": "eva.settings"} | overrides
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EVA_HTTPS", "maybe", "EVA_HTTPS must be a boolean"),
        ("DATABASE_URL", "mysql://db/eva", "DATABASE_URL must be a URL starting with postgres://"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL must be a URL starting with redis://"),
        ("EVA_API_PAGE_SIZE", "fifty", "EVA_API_PAGE_SIZE must be an integer"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL must be one of"),
        ("EVA_BASE_DOMAIN", "https://eva.example.com", "EVA_BASE_DOMAIN must be a host name"),
    ],
)
def test_a_malformed_value_stops_start_up_naming_the_variable(name, value, message):
    result = load_settings(**{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_production_refuses_a_missing_or_weak_secret_key():
    result = load_settings(DEBUG="0", SECRET_KEY="short")
    assert result.returncode != 0
    assert "SECRET_KEY must be at least 32 random characters" in result.stderr


def test_valid_settings_load():
    result = load_settings()
    assert result.returncode == 0, result.stderr


def test_a_secret_can_come_from_a_file(tmp_path, monkeypatch):
    secret = tmp_path / "openai_key"
    secret.write_text("sk-from-file\n")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY_FILE", str(secret))
    assert env.optional("OPENAI_API_KEY") == "sk-from-file"
    monkeypatch.setenv("OPENAI_API_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="OPENAI_API_KEY_FILE points to"):
        env.optional("OPENAI_API_KEY")


def test_typed_readers(monkeypatch):
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_INT", "-3")
    monkeypatch.setenv("X_LIST", "a.example.com, b.example.com,,")
    assert env.boolean("X_BOOL", False) is True
    assert env.string_list("X_LIST") == ["a.example.com", "b.example.com"]
    with pytest.raises(ImproperlyConfigured, match="X_INT must be at least 0, got -3"):
        env.integer("X_INT", 1, minimum=0)
    with pytest.raises(ImproperlyConfigured, match="X_MISSING is required"):
        env.string("X_MISSING")
