"""Resilient service-to-service HTTP: deadline, retry, circuit breaker, bulkhead, fallback,
and client-side discovery and load balancing over an upstream's instances."""

from common.http.balancer import Balancer, OutlierPolicy
from common.http.breaker import BreakerPolicy, BreakerStateName, CircuitBreaker, CircuitOpen, Permit
from common.http.bulkhead import Bulkhead, BulkheadFull
from common.http.client import (
    IDEMPOTENCY_KEY_HEADER,
    AuthHeaders,
    ClientState,
    DeadlineOutcomeUnknown,
    Fallback,
    Outcome,
    OutcomeUnknown,
    RequestOptions,
    ServiceClient,
    UpstreamOutcomeUnknown,
)
from common.http.discovery import Discovery, Endpoint, InstanceSource
from common.http.retry import (
    IDEMPOTENT_METHODS,
    RETRYABLE_STATUSES,
    RetryBudget,
    RetryPolicy,
    parse_retry_after,
)

__all__ = [
    "IDEMPOTENCY_KEY_HEADER",
    "IDEMPOTENT_METHODS",
    "RETRYABLE_STATUSES",
    "AuthHeaders",
    "Balancer",
    "BreakerPolicy",
    "BreakerStateName",
    "Bulkhead",
    "BulkheadFull",
    "CircuitBreaker",
    "CircuitOpen",
    "ClientState",
    "DeadlineOutcomeUnknown",
    "Discovery",
    "Endpoint",
    "Fallback",
    "InstanceSource",
    "Outcome",
    "OutcomeUnknown",
    "OutlierPolicy",
    "Permit",
    "RequestOptions",
    "RetryBudget",
    "RetryPolicy",
    "ServiceClient",
    "UpstreamOutcomeUnknown",
    "parse_retry_after",
]
