"""docs/architecture.md's picture is true to the code: services and ports, calls, topics, groups.

The picture is a Mermaid flowchart written by hand (so it reads well); this test parses its nodes
and edges and compares them, exactly, with the stack's service table and default ports, the
consumer contracts (one per synchronous call) and the AsyncAPI document (publishers and consumer
groups, itself checked against the code by ``test_asyncapi.py``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.messaging import ALL_TOPICS
from stack.cli import _parser
from stack.services import DEFAULT_BASE_PORT, SERVICES

ROOT = Path(__file__).resolve().parents[2]
PICTURE = ROOT / "docs" / "architecture.md"

_NODE = re.compile(r'^\s*(\w+)(\[\[|\[/|\(\[|\[\(|\[)"?([^"\]\)/]+)"?(?:\]\]|/\]|\]\)|\)\]|\])\s*$')
_EDGE = re.compile(r"^\s*(\w+)\s*-->\|([^|]+)\|\s*(\w+)\s*$")


def _mermaid() -> list[str]:
    text = PICTURE.read_text(encoding="utf-8")
    blocks = re.findall(r"```mermaid\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1, f"{PICTURE} should hold one mermaid picture, found {len(blocks)}"
    return blocks[0].splitlines()


@pytest.fixture(scope="module")
def nodes() -> dict[str, str]:
    """Node id → its label."""
    return {m[1]: m[3].strip() for line in _mermaid() if (m := _NODE.match(line))}


@pytest.fixture(scope="module")
def edges() -> set[tuple[str, str, str]]:
    """(from label, edge label, to label): ids resolved to what a reader sees."""
    found = [m.groups() for line in _mermaid() if (m := _EDGE.match(line))]
    labels = {m[1]: m[3].strip() for line in _mermaid() if (m := _NODE.match(line))}

    def name(node: str) -> str:
        # A service's label is "room :8003 · mgmt :9003": the name is its first word.
        return labels[node].split()[0]

    return {(name(a), label.strip(), name(b)) for a, label, b in found}


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "contracts" / "asyncapi.yaml").read_text(encoding="utf-8"))
    return doc


def test_every_service_is_drawn_with_its_ports(nodes: dict[str, str]) -> None:
    drawn = {label.split()[0]: label for label in nodes.values()}
    for service in SERVICES:
        port = DEFAULT_BASE_PORT + service.offset
        assert drawn.get(service.name) == f"{service.name} :{port} · mgmt :{port + 1000}", service.name


def test_kafka_and_the_smtp_sink_are_drawn_on_the_stacks_default_ports() -> None:
    defaults = _parser().parse_args(["up"])
    text = "\n".join(_mermaid())
    assert f"subgraph kafka [Kafka :{defaults.kafka_port}]" in text
    assert f'smtp[("SMTP :{defaults.smtp_port}")]' in text


def test_the_synchronous_calls_are_the_consumer_contracts(edges: set[tuple[str, str, str]]) -> None:
    contracts = {tuple(p.stem.split("--")) for p in (ROOT / "contracts" / "consumers").glob("*--*.yaml")}
    drawn = {(a, b) for a, label, b in edges if label == "REST" and a != "client"}
    assert drawn == contracts
    assert ("client", "REST", "gateway") in edges
    assert ("notification", "SMTP", "SMTP") in edges


def test_every_topic_is_drawn_with_its_publisher_and_consumer_groups(
    edges: set[tuple[str, str, str]], nodes: dict[str, str], asyncapi: dict[str, Any]
) -> None:
    address = {key: channel["address"] for key, channel in asyncapi["channels"].items()}
    publishes, consumes = set(), set()
    for op in asyncapi["operations"].values():
        topic = address[op["channel"]["$ref"].rsplit("/", 1)[-1]]
        service = op.get("x-service")
        if service in (None, "operator"):  # dead letters and the DLQ tool: not drawn
            continue
        if op["action"] == "send":
            publishes.add((service, "publishes", topic))
        else:
            for group in op["bindings"]["kafka"]["groupId"]["enum"]:
                consumes.add((topic, group, service))

    topics_drawn = {label for label in nodes.values() if "." in label and " " not in label}
    assert topics_drawn == set(ALL_TOPICS)
    assert {e for e in edges if e[1] == "publishes"} == publishes
    assert {e for e in edges if e[0] in ALL_TOPICS} == consumes
