"""contracts/asyncapi.yaml is true to the code.

The document is compared with what the code does, not with a second hand-kept list:

* channels: the topic catalogue (``TOPIC_FOR_EVENT``) and the ``.dlq`` twins ``ensure_topics``
  creates, with its partition count;
* messages: one per version file in contracts/events, each pointing at that file;
* headers: what ``Envelope.to_headers()`` writes, and the consumer's ``dlq_*`` headers;
* publishers and keys: every ``outbox.add(...)`` call in the services' source (read with ``ast``);
* consumers: the consumer groups each service's app wires (``runtime.consumers``, built in-process
  without starting anything).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from common.messaging import ALL_TOPICS, TOPIC_FOR_EVENT, dlq_topic, ensure_topics
from common.messaging import consumer as consumer_module
from common.messaging.codec import _SCHEMA_FILE
from common.messaging.envelope import _REQUIRED, Envelope

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "contracts" / "asyncapi.yaml"
EVENTS_DIR = DOC_PATH.parent / "events"
SERVICES = ["gateway", "auth", "member", "room", "inventory", "notification"]
AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"

Doc = dict[str, Any]


# -- the document ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> Doc:
    loaded: Doc = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    return loaded


def deref(doc: Doc, node: Any) -> Any:
    """Follow local ``$ref``s (``#/components/...``) until a real node."""
    while isinstance(node, dict) and str(node.get("$ref", "")).startswith("#/"):
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


class Message(NamedTuple):
    key: str  # e.g. ReservationCreated.v2 (the channel's and the component's key)
    body: dict[str, Any]


class Operation(NamedTuple):
    id: str
    action: str
    address: str
    messages: list[Message]
    body: dict[str, Any]


def channel_messages(doc: Doc, channel: dict[str, Any]) -> list[Message]:
    return [Message(key, deref(doc, ref)) for key, ref in channel.get("messages", {}).items()]


def channels(doc: Doc) -> dict[str, dict[str, Any]]:
    """Channels by address."""
    return {c["address"]: c for c in (deref(doc, c) for c in doc["channels"].values())}


def operations(doc: Doc) -> list[Operation]:
    found = []
    for op_id, op in doc["operations"].items():
        channel = deref(doc, op["channel"])
        messages = [Message(ref["$ref"].rsplit("/", 1)[1], deref(doc, ref)) for ref in op["messages"]]
        found.append(Operation(op_id, op["action"], channel["address"], messages, op))
    return found


def event_versions() -> set[tuple[str, int]]:
    """(event, version) of every schema file in contracts/events."""
    found = set()
    for path in EVENTS_DIR.glob("*.avsc"):
        match = _SCHEMA_FILE.match(path.name)
        assert match, path
        found.add((match["event"], int(match["version"])))
    return found


def latest(event: str) -> int:
    return max(v for e, v in event_versions() if e == event)


def versioned(message: Message) -> tuple[str, int]:
    event, _, version = message.key.partition(".v")
    return event, int(version)


# -- the code -------------------------------------------------------------------------------


class Published(NamedTuple):
    service: str
    event: str
    key_field: str  # the attribute passed as key=, e.g. reservation.reservation_id → reservation_id


def published_in_source() -> set[Published]:
    """Every ``<...outbox>.add(session, EVENT, key=x.FIELD, ...)`` call in the services' source.

    EVENT is a string literal or a module-level constant (``RESERVATION_CREATED = "..."``).
    """
    found = set()
    for service in SERVICES:
        package = ROOT / "services" / service / "src" / f"{service}_service"
        trees = [
            ast.parse(path.read_text(encoding="utf-8"))
            for path in package.rglob("*.py")
            if "migrations" not in path.parts
        ]
        constants = {
            target.id: node.value.value
            for tree in trees
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name) and isinstance(node.value.value, str)
        }
        for tree in trees:
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add"
                    and "outbox" in ast.unparse(node.func.value).lower()
                ):
                    continue
                keywords = {k.arg: k.value for k in node.keywords}
                event_node = node.args[1] if len(node.args) > 1 else keywords["event_type"]
                key_node = node.args[2] if len(node.args) > 2 else keywords["key"]
                if isinstance(event_node, ast.Constant):
                    event = event_node.value
                else:
                    name = (
                        event_node.attr if isinstance(event_node, ast.Attribute) else ast.unparse(event_node)
                    )
                    event = constants[name]
                key = key_node.attr if isinstance(key_node, ast.Attribute) else ast.unparse(key_node)
                found.add(Published(service, event, key))
    assert found, "no outbox.add calls found: has the outbox API changed?"
    return found


class Consumed(NamedTuple):
    service: str
    group: str
    topic: str
    event: str


@pytest.fixture(scope="module")
def consumed(tmp_path_factory: pytest.TempPathFactory) -> set[Consumed]:
    """What each service's app wires: (service, consumer group, topic, event type it handles).

    The apps are built, not started: consumers only connect in the lifespan.
    """
    run_dir = tmp_path_factory.mktemp("run")
    found = set()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUN_DIR", str(run_dir))
        for service in SERVICES:
            create_app = importlib.import_module(f"{service}_service.app").create_app
            settings_cls = getattr(
                importlib.import_module(f"{service}_service.settings"), f"{service.capitalize()}Settings"
            )
            app = create_app(settings_cls(env="test", service_keys_dir=run_dir / "keys"))
            runtime = getattr(app.state, "runtime", None)
            for runner in runtime.consumers if runtime is not None else []:
                # The handlers map is the runner's own record of what it handles.
                for event in runner._handlers:
                    assert TOPIC_FOR_EVENT[event] in runner.topics, (runner.name, event)
                    found.add(Consumed(service, runner.name, TOPIC_FOR_EVENT[event], event))
    assert found, "no consumers found: has the runtime API changed?"
    return found


# -- the checks -----------------------------------------------------------------------------


def test_it_is_an_asyncapi_3_document_whose_references_resolve(doc: Doc) -> None:
    assert doc["asyncapi"] == "3.0.0"
    for ref in set(refs(doc)):
        if ref.startswith("#/"):
            assert deref(doc, {"$ref": ref}) is not None, ref
        else:
            assert (DOC_PATH.parent / ref).is_file(), f"{ref} does not exist"
            json.loads((DOC_PATH.parent / ref).read_text(encoding="utf-8"))


def test_channels_are_the_topic_catalogue_and_its_dead_letter_twins(doc: Doc) -> None:
    assert set(channels(doc)) == set(ALL_TOPICS) | {dlq_topic(t) for t in ALL_TOPICS}
    partitions = inspect.signature(ensure_topics).parameters["partitions"].default
    for address, channel in channels(doc).items():
        assert deref(doc, channel["bindings"])["kafka"]["partitions"] == partitions, address


def test_every_event_version_is_a_message_of_its_topic_pointing_at_its_schema(doc: Doc) -> None:
    on_channels = {
        (address, versioned(m)): m
        for address, channel in channels(doc).items()
        if address in ALL_TOPICS
        for m in channel_messages(doc, channel)
    }
    expected = {(TOPIC_FOR_EVENT[event], (event, version)) for event, version in event_versions()}
    assert set(on_channels) == expected  # every version of every event, on its topic, nothing else
    for (_, (event, version)), message in on_channels.items():
        assert message.body["name"] == event
        payload = message.body["payload"]
        assert payload["schemaFormat"] == AVRO_FORMAT
        assert payload["schema"] == {"$ref": f"./events/{event}.v{version}.avsc"}
        # The component the channel points at has the same key: one name per message everywhere.
        assert doc["components"]["messages"][message.key] is message.body


def test_the_envelope_headers_are_documented(doc: Doc) -> None:
    schema = doc["components"]["schemas"]["EnvelopeHeaders"]
    everything = Envelope("e", "T", 1, "f" * 16, "t", "p", traceparent="tp", request_id="r", key="k")
    written = {name for name, _ in everything.to_headers()}
    assert set(schema["properties"]) == written
    assert schema["required"] == list(_REQUIRED)
    for address in ALL_TOPICS:
        for message in channel_messages(doc, channels(doc)[address]):
            assert deref(doc, message.body["headers"]) is schema, message.key


def test_the_dead_letter_headers_are_documented(doc: Doc) -> None:
    schema = doc["components"]["schemas"]["DeadLetterHeaders"]
    written = {
        value
        for name, value in vars(consumer_module).items()
        if name.startswith("H_DLQ_") and isinstance(value, str)
    }
    assert len(written) == 5
    assert set(schema["properties"]) == written
    assert set(schema["required"]) == written
    for address in ALL_TOPICS:
        [message] = channel_messages(doc, channels(doc)[dlq_topic(address)])
        assert deref(doc, message.body["headers"]) is schema


def test_keys_are_the_aggregate_ids_the_producers_use(doc: Doc) -> None:
    key_of = {p.event: p.key_field for p in published_in_source()}
    for address in ALL_TOPICS:
        for message in channel_messages(doc, channels(doc)[address]):
            event, version = versioned(message)
            field = deref(doc, message.body["bindings"])["kafka"]["key"]["x-field"]
            assert field == key_of[event], (
                f"{message.key}: documented key {field}, outbox uses {key_of[event]}"
            )
            schema = json.loads((EVENTS_DIR / f"{event}.v{version}.avsc").read_text(encoding="utf-8"))
            assert field in {f["name"] for f in schema["fields"]}, message.key
            assert f"Keyed by {field}" in schema["doc"], message.key


def test_publishers_are_the_services_whose_outbox_writes_the_event(doc: Doc) -> None:
    documented = set()
    for op in operations(doc):
        if op.action == "send" and op.address in ALL_TOPICS:
            for message in op.messages:
                event, version = versioned(message)
                assert op.address == TOPIC_FOR_EVENT[event], op.id
                assert version == latest(event), f"{op.id}: producers write the latest, v{latest(event)}"
                documented.add((op.body["x-service"], event))
    assert documented == {(p.service, p.event) for p in published_in_source()}


def test_consumers_are_the_consumer_groups_the_services_wire(doc: Doc, consumed: set[Consumed]) -> None:
    documented = set()
    for op in operations(doc):
        if op.action == "receive" and op.address in ALL_TOPICS:
            [group] = op.body["bindings"]["kafka"]["groupId"]["enum"]
            events = {versioned(m)[0] for m in op.messages}
            for event in events:
                documented.add(Consumed(op.body["x-service"], group, op.address, event))
                # A consumer reads every version that may be in the topic, not just the latest.
                versions = {v for e, v in map(versioned, op.messages) if e == event}
                assert versions == {v for e, v in event_versions() if e == event}, (op.id, event)
    assert documented == consumed


def test_dead_letters_are_written_by_the_consumers_of_the_origin_topic(
    doc: Doc, consumed: set[Consumed]
) -> None:
    senders = {
        op.address: op for op in operations(doc) if op.action == "send" and op.address not in ALL_TOPICS
    }
    readers = {
        op.address for op in operations(doc) if op.action == "receive" and op.address not in ALL_TOPICS
    }
    for topic in ALL_TOPICS:
        groups = sorted({c.group for c in consumed if c.topic == topic})
        assert senders[dlq_topic(topic)].body["x-consumer-groups"] == groups, topic
        assert dlq_topic(topic) in readers, f"{dlq_topic(topic)}: no redrive operation"
