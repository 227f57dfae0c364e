"""OpenTelemetry traces: one tracer provider per process, W3C propagation, optional Zipkin export.

``configure_tracing`` runs once per process (the CLI before serving; the app factory makes sure
a provider exists for apps built in tests). Spans always get real ids, so logs, outbox rows and
Kafka headers carry them; only with a Zipkin endpoint are they batched and exported, so with
tracing off nothing leaves the process and no export thread runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["SpanKind", "configure_tracing", "ensure_provider", "extract", "inject", "span", "tracer"]

_lock = threading.Lock()
_provider: TracerProvider | None = None
_exporting: set[str] = set()
# W3C trace context only: no baggage header travels between services or into Kafka.
propagate.set_global_textmap(TraceContextTextMapPropagator())


def configure_tracing(service: str, zipkin_endpoint: str = "") -> TracerProvider:
    """The process's tracer provider (created on first call); exports to ``zipkin_endpoint`` if set.

    ``zipkin_endpoint`` is Zipkin's span intake, e.g. ``http://127.0.0.1:9411/api/v2/spans``.
    """
    global _provider
    with _lock:
        if _provider is None:
            _provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
            trace.set_tracer_provider(_provider)
        if zipkin_endpoint and zipkin_endpoint not in _exporting:
            _exporting.add(zipkin_endpoint)
            _provider.add_span_processor(BatchSpanProcessor(ZipkinExporter(endpoint=zipkin_endpoint)))
        return _provider


def ensure_provider() -> None:
    """A provider for code run outside a service process (tests, scripts): spans get real ids."""
    if _provider is None:
        configure_tracing("unknown_service")


def tracer() -> Tracer:
    ensure_provider()
    return trace.get_tracer("common")


def inject(carrier: MutableMapping[str, str], context: Context | None = None) -> None:
    """Write ``traceparent`` for the current span (or ``context``'s) into ``carrier``."""
    propagate.inject(carrier, context=context)


def extract(carrier: Mapping[str, str]) -> Context:
    """The remote parent in ``carrier``'s ``traceparent`` (an empty context when absent or invalid)."""
    return propagate.extract(carrier)


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    context: Context | None = None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[Span]:
    """A span made current for the block; an exception is recorded on it and re-raised."""
    with tracer().start_as_current_span(name, context=context, kind=kind, attributes=attributes) as current:
        yield current
