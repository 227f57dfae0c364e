"""OpenTelemetry propagation: a traceparent in -> the same trace in the logs, the outbox row and Kafka."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import httpx
from fastapi import APIRouter

from common.app_factory import create_service_app
from common.context import TraceContext
from common.logging import JsonFormatter
from common.messaging.relay import _produce_span
from common.tracing import extract, inject, span

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


async def test_an_incoming_traceparent_is_the_trace_of_every_log_line_and_of_what_the_request_sends() -> None:
    router = APIRouter()
    log = logging.getLogger("test.tracing")

    @router.get("/work")
    async def work() -> dict[str, str]:
        log.info("doing the work")
        carrier: dict[str, str] = {}
        inject(carrier)  # what the outbox stores and the HTTP client sends
        return carrier

    app = create_service_app(service="test", title="test", routers=[router])
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("test"))
    # On the two loggers themselves: other tests change the root logger's level and handlers.
    loggers = [logging.getLogger(name) for name in ("test.tracing", "common.access")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.get("/work", headers={"traceparent": PARENT, "X-Request-ID": "req-1"})
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)

    sent = TraceContext.parse(response.json()["traceparent"])
    assert sent is not None
    assert sent.trace_id == TRACE_ID  # the caller's trace continues...
    assert sent.span_id != "b7ad6b7169203331"  # ...in this service's own server span
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    ours = [line for line in lines if line["logger"] in ("test.tracing", "common.access")]
    assert {line["message"].split(" ")[0] for line in ours} >= {
        "doing",
        "GET",
    }  # the work and the access line
    for line in ours:
        assert (line["trace_id"], line["span_id"], line["request_id"]) == (TRACE_ID, sent.span_id, "req-1")


def test_an_invalid_traceparent_starts_a_new_trace() -> None:
    with span("request", context=extract({"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-{'f' * 600}"})):
        carrier: dict[str, str] = {}
        inject(carrier)
    started = TraceContext.parse(carrier["traceparent"])
    assert started is not None
    assert started.trace_id != TRACE_ID


def test_the_produce_span_is_a_child_of_the_row_and_its_traceparent_goes_in_the_kafka_headers() -> None:
    row = SimpleNamespace(
        topic="room.reservations",
        key="r-1",
        headers={"traceparent": PARENT, "event_id": "e-1", "event_type": "T"},
    )
    produce, headers = _produce_span(row)  # type: ignore[arg-type]
    produce.end()
    sent = TraceContext.parse(headers["traceparent"])
    context = produce.get_span_context()
    assert sent is not None
    assert sent.trace_id == TRACE_ID
    assert int(sent.span_id, 16) == context.span_id  # consumers' spans become children of the send
    assert produce.parent is not None  # type: ignore[attr-defined]
    assert produce.parent.span_id == int("b7ad6b7169203331", 16)  # type: ignore[attr-defined]
    assert headers["event_id"] == "e-1"  # every other header travels unchanged


async def test_a_server_span_is_named_after_its_route_template_while_it_is_still_open() -> None:
    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    router = APIRouter()

    @router.get("/rooms/{room_id}")
    async def room(room_id: str) -> dict[str, str]:
        return {"room_id": room_id}

    app = create_service_app(service="test", title="test", routers=[router])  # configures tracing
    provider = otel_trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/rooms/r101", headers={"X-Request-ID": "req-2"})).status_code == 200
    finally:
        processor.shutdown()

    servers = [s for s in exporter.get_finished_spans() if s.kind == otel_trace.SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /rooms/{room_id}"]  # one name for every room id
    assert servers[0].attributes is not None
    assert servers[0].attributes["http.route"] == "/rooms/{room_id}"
    assert servers[0].attributes["request.id"] == "req-2"


def test_a_db_transaction_is_a_span_inside_a_trace_and_none_outside(tmp_path: Path) -> None:
    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from sqlalchemy import text

    from common.db import Database
    from common.tracing import ensure_provider

    ensure_provider()
    provider = otel_trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    db = Database(f"sqlite:///{tmp_path / 'traced.db'}")
    try:
        with db.transaction() as session:  # a background loop's round: no trace of its own
            session.execute(text("SELECT 1"))
        with span("handle event") as parent:
            with db.transaction() as session:
                session.execute(text("SELECT 1"))
            with db.read() as session:
                session.execute(text("SELECT 1"))
    finally:
        processor.shutdown()
        db.dispose()

    finished = {s.name: s for s in exporter.get_finished_spans()}
    assert set(finished) == {"handle event", "db transaction", "db read"}
    for name in ("db transaction", "db read"):
        assert finished[name].parent is not None
        assert finished[name].parent.span_id == parent.get_span_context().span_id
        assert finished[name].attributes is not None
        assert finished[name].attributes["db.system"] == "sqlite"
