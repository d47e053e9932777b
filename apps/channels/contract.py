"""The Redis stream contract (contracts/streams), loaded once and used to validate both ways.

Every entry has one field, ``event``, holding one JSON document; its ``type`` names the schema
(``index.json``). Schemas ``$ref`` ``common.schema.json`` by relative URI, so every schema file is
registered by its ``$id`` before validating (contracts/streams/README.md).

Two validators are compiled from the same files: ``jsonschema_rs`` (Rust) answers "valid?" in a
few microseconds, which the inbound consumer needs at a thousand events a second (the pure-Python
``jsonschema`` takes about 1.5 ms per event); ``jsonschema`` explains a refusal with its
``best_match`` error, which is what operators read in dead letters. A test holds the two to the
same verdict on every example and on every kind of breakage.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from django.conf import settings
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

ENTRY_FIELD = "event"
VERSION = 1
INBOUND_GROUP = "inbound-consumers"


class ContractError(ValueError):
    """An entry that does not follow the stream contract (bad JSON, unknown type, schema)."""


def _contracts_dir() -> Path:
    return Path(settings.EVA_CONTRACTS_DIR)


@dataclass(frozen=True)
class _EntryType:
    direction: str
    fast: Any  # jsonschema_rs.Draft202012Validator (untyped extension module)
    explaining: Draft202012Validator


@lru_cache(maxsize=1)
def _validators() -> dict[str, _EntryType]:
    root = _contracts_dir()
    index = json.loads((root / "index.json").read_text(encoding="utf-8"))
    schemas = [
        json.loads(path.read_text(encoding="utf-8")) for path in sorted(root.rglob("*.schema.json"))
    ]
    registry: Registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas
    )
    fast_registry = jsonschema_rs.Registry([(schema["$id"], schema) for schema in schemas])
    validators = {}
    for entry in index["types"]:
        schema = registry.contents(entry["$id"])
        validators[entry["type"]] = _EntryType(
            direction=entry["direction"],
            fast=jsonschema_rs.Draft202012Validator(
                schema, registry=fast_registry, validate_formats=True
            ),
            explaining=Draft202012Validator(
                schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
            ),
        )
    return validators


def types(direction: str) -> list[str]:
    """Entry types of one direction (``inbound``, ``outbound``, ``control``)."""
    return [name for name, entry in _validators().items() if entry.direction == direction]


def validate(document: Any, *, direction: str | None = None) -> dict[str, Any]:
    """Return the document if it follows the contract, else raise ContractError."""
    if not isinstance(document, dict):
        raise ContractError("the event is not a JSON object")
    kind = document.get("type")
    found = _validators().get(kind) if isinstance(kind, str) else None
    if found is None:
        raise ContractError(f"unknown event type {kind!r}")
    if direction is not None and found.direction != direction:
        raise ContractError(f"{kind!r} is a {found.direction} entry, not {direction}")
    if found.fast.is_valid(document):
        return document
    errors = list(found.explaining.iter_errors(document))
    # A failing envelope (allOf) also makes every envelope field "unevaluated": report the cause.
    causes = [e for e in errors if e.validator != "unevaluatedProperties"] or errors
    error = best_match(causes)
    if error is not None:
        raise ContractError(_describe(error))
    # The validators disagree (they must not; a test holds them together): refuse, since the
    # fast one said no, with its own words.
    first = next(iter(found.fast.iter_errors(document)), None)
    raise ContractError(str(getattr(first, "message", "invalid event"))[:2000])


def _describe(error: ValidationError) -> str:
    where = "/".join(str(part) for part in error.absolute_path) or "(document)"
    return f"{where}: {error.message}"[:2000]


def parse_entry(fields: dict[str, str], *, direction: str) -> dict[str, Any]:
    """Parse and validate the fields of one stream entry."""
    if set(fields) != {ENTRY_FIELD}:
        raise ContractError(f"an entry has exactly one field {ENTRY_FIELD!r}, got {sorted(fields)}")
    try:
        document = json.loads(fields[ENTRY_FIELD])
    except (TypeError, ValueError) as exc:
        raise ContractError(f"the event is not valid JSON: {exc}") from exc
    return validate(document, direction=direction)


def now_ts() -> str:
    """ISO-8601 UTC with milliseconds and a Z, as the contract's ``ts`` pattern wants."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def envelope(
    *, kind: str, session_id: str, tenant_schema: str, event_id: str | None = None
) -> dict:
    return {
        "v": VERSION,
        "type": kind,
        "session_id": session_id,
        "tenant_schema": tenant_schema,
        "event_id": event_id or str(uuid.uuid4()),
        "ts": now_ts(),
    }


# --- Stream names (docs/streams.md). The prefix is "eva" everywhere except isolated test runs.


def inbound_stream() -> str:
    return f"{settings.EVA_STREAM_PREFIX}:inbound"


def outbound_stream(session_id: str) -> str:
    return f"{settings.EVA_STREAM_PREFIX}:outbound:{session_id}"


def control_stream() -> str:
    return f"{settings.EVA_STREAM_PREFIX}:control"
