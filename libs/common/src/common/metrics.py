"""Prometheus metrics, defined once so every service exports the same names and labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests served", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"]
)
UPSTREAM_CALLS = Counter(
    "upstream_calls_total",
    "Calls to other services by outcome (success, client_error, error, timeout, rejected_open, ...)",
    ["service", "upstream", "outcome"],
)
UPSTREAM_LATENCY = Histogram(
    "upstream_attempt_duration_seconds",
    "Duration of each attempt to call another service, answered or not (fit timeouts to this)",
    ["service", "upstream"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0),
)
UPSTREAM_RETRIES = Counter(
    "upstream_retries_total", "Retries made to other services", ["service", "upstream"]
)
UPSTREAM_INSTANCES = Gauge(
    "upstream_instances_in_rotation",
    "Instances of an upstream that take calls (not ejected by outlier detection)",
    ["service", "upstream"],
)
UPSTREAM_EJECTIONS = Counter(
    "upstream_ejections_total",
    "Instances of an upstream taken out of rotation for failing (outlier detection)",
    ["service", "upstream"],
)
BREAKER_STATE = Gauge(
    "circuit_breaker_state",
    "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open",
    ["service", "upstream"],
)
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox rows not yet published", ["service"])
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox rows published", ["service", "topic"])
MESSAGES_CONSUMED = Counter(
    "messages_consumed_total", "Messages handled", ["service", "consumer", "topic", "outcome"]
)
MESSAGES_DUPLICATE = Counter(
    "messages_duplicate_total", "Duplicate messages skipped", ["service", "consumer", "topic"]
)
MESSAGES_RETRIED = Counter(
    "messages_retried_total", "Handler retries after a transient error", ["service", "consumer", "topic"]
)
MESSAGES_DLQ = Counter(
    "messages_dead_lettered_total", "Messages sent to a dead-letter topic", ["service", "consumer", "topic"]
)
CONSUMER_LAG = Gauge(
    "consumer_lag", "Messages behind the partition end", ["service", "consumer", "topic", "partition"]
)
FAULTS_INJECTED = Counter(
    "faults_injected_total", "Faults injected by fault switches (common.faults)", ["service", "name", "kind"]
)
# -- for the SLOs and alerts of docs/slo.md (deploy/prometheus/rules) --------------------------
OUTBOX_OLDEST_AGE = Gauge(
    "outbox_oldest_unsent_age_seconds",
    "Age of the oldest outbox row not yet published (0 when none), set by each relay round",
    ["service"],
)
BREAKER_TRANSITIONS = Counter(
    "circuit_breaker_transitions_total",
    "Circuit breaker state changes per upstream, by the state entered (closed, half_open, open)",
    ["service", "upstream", "to"],
)
BULKHEAD_IN_USE = Gauge(
    "bulkhead_in_use", "Calls to an upstream in flight (bulkhead slots taken)", ["service", "upstream"]
)
BULKHEAD_CAPACITY = Gauge(
    "bulkhead_capacity", "Bulkhead slots per upstream (max concurrent calls)", ["service", "upstream"]
)
DLQ_SIZE = Gauge(
    "dead_letter_queue_size",
    "Dead letters this consumer group parked and that were not redriven yet",
    ["service", "consumer"],
)
MESSAGE_PROCESSING = Histogram(
    "message_processing_seconds",
    "Time from receiving a message to its final outcome (retries included), per consumer",
    ["service", "consumer", "topic"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
