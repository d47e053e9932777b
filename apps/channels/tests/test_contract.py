"""The stream contract, validated in Python against the same JSON Schema files gateway-node uses.

The validator here is built independently from the files (as contracts/streams/README.md shows),
so a publisher bug cannot hide behind its own validation.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from apps.channels import contract, publisher
from apps.channels.tests.conftest import CONTRACTS, example


def _independent_validator():
    schemas = [json.loads(p.read_text()) for p in CONTRACTS.rglob("*.schema.json")]
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas
    )
    index = json.loads((CONTRACTS / "index.json").read_text())
    by_type = {t["type"]: t["$id"] for t in index["types"]}

    def validate(document: dict) -> None:
        Draft202012Validator(
            registry.contents(by_type[document["type"]]),
            registry=registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        ).validate(document)

    return validate


INDEX = json.loads((CONTRACTS / "index.json").read_text())


@pytest.mark.parametrize("kind", [t["type"] for t in INDEX["types"]])
def test_every_example_of_the_contract_is_valid(kind):
    document = example(kind)
    assert contract.validate(document) is document
    _independent_validator()(document)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(surprise=1), "Unevaluated properties"),
        (lambda d: d.pop("wa_id"), "'wa_id' is a required property"),
        (lambda d: d.update(v=2), "1 was expected"),
        (lambda d: d.update(event_id="not-a-uuid"), "is not a 'uuid'"),
        (lambda d: d.update(session_id="bad id!"), "does not match"),
        (lambda d: d["media"].update(key="../etc/passwd"), "does not match"),
        (lambda d: d.update(type="teleport"), "unknown event type"),
    ],
)
def test_documents_breaking_the_contract_are_refused(change, message):
    document = example("message")
    change(document)
    with pytest.raises(contract.ContractError, match=message):
        contract.validate(document)


def test_entries_need_exactly_one_json_event_field():
    good = json.dumps(example("qr"))
    assert contract.parse_entry({"event": good}, direction="inbound")["type"] == "qr"
    with pytest.raises(contract.ContractError, match="exactly one field"):
        contract.parse_entry({"event": good, "extra": "x"}, direction="inbound")
    with pytest.raises(contract.ContractError, match="not valid JSON"):
        contract.parse_entry({"event": "{nope"}, direction="inbound")
    with pytest.raises(contract.ContractError, match="not a JSON object"):
        contract.parse_entry({"event": "[1]"}, direction="inbound")
    # An outbound command appearing on the inbound stream is refused too.
    with pytest.raises(contract.ContractError, match="outbound entry, not inbound"):
        contract.parse_entry({"event": json.dumps(example("send_text"))}, direction="inbound")


def _published(client, stream: str) -> list[dict]:
    return [json.loads(fields["event"]) for _id, fields in client.xrange(stream)]


def test_every_command_the_publisher_writes_follows_the_contract(streams):
    validate = _independent_validator()
    later = datetime.now(UTC) + timedelta(minutes=10)
    chat = "5215512345678@c.us"
    session = {"session_id": "alpha-abc123", "tenant_schema": "alpha"}
    ids = [
        publisher.send_text(chat_id=chat, text="Hola", expires_at=later, **session),
        publisher.send_text(chat_id=chat, text="¿Algo más?", quoted_wa_id="false_x_1", **session),
        publisher.send_media(
            chat_id=chat,
            media=example("send_media")["media"],
            caption="Catálogo",
            as_document=True,
            **session,
        ),
        publisher.mark_read(chat_id=chat, **session),
        publisher.typing(chat_id=chat, state="recording", **session),
    ]
    outbound = _published(streams, contract.outbound_stream("alpha-abc123"))
    assert [d["event_id"] for d in outbound] == ids
    assert [d["type"] for d in outbound] == [
        "send_text",
        "send_text",
        "send_media",
        "mark_read",
        "typing",
    ]
    for document in outbound:
        validate(document)
        assert document["v"] == 1 and document["tenant_schema"] == "alpha"
    # Optional fields are omitted rather than null.
    assert "quoted_wa_id" not in outbound[0] and outbound[0]["expires_at"].endswith("Z")

    for kind in ("start", "stop", "logout"):
        publisher.control(kind, **session)
    publisher.control("start", gateway_id="gateway-2", **session)
    control = _published(streams, contract.control_stream())
    assert [d["type"] for d in control] == ["start", "stop", "logout", "start"]
    assert "gateway_id" not in control[0] and control[3]["gateway_id"] == "gateway-2"
    for document in control:
        validate(document)
    # One field per entry, named "event".
    assert all(set(f) == {"event"} for _i, f in streams.xrange(contract.control_stream()))


def test_the_publisher_refuses_to_write_an_invalid_command(streams):
    with pytest.raises(contract.ContractError):
        publisher.send_text(
            session_id="alpha-abc123", tenant_schema="alpha", chat_id="no-at-sign", text="x"
        )
    assert streams.exists(contract.outbound_stream("alpha-abc123")) == 0


def _breakages(document: dict):
    """Every document one edit away from a valid one: each field removed, emptied, nulled,
    given a wrong type or a malformed date/uuid, and an extra field."""
    yield {**document, "surprise": 1}
    for name in document:
        for value in (None, "", 12345, "not-a-uuid", "2026-13-45T99:00:00Z", [], {}, True):
            yield {**document, name: value}
        yield {key: value for key, value in document.items() if key != name}


@pytest.mark.parametrize("kind", [t["type"] for t in INDEX["types"]])
def test_the_fast_and_the_explaining_validators_agree(kind):
    entry = contract._validators()[kind]
    checked = refused = 0
    for document in [example(kind), *_breakages(example(kind))]:
        verdict = entry.fast.is_valid(document)
        assert verdict == entry.explaining.is_valid(document), document
        checked += 1
        refused += not verdict
        if not verdict:
            with pytest.raises(contract.ContractError):
                contract.validate(document)
    assert refused > checked // 2  # most single edits break a document
