"""Resilient service-to-service HTTP: deadline, retry, circuit breaker, bulkhead, fallback."""

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
    "BreakerPolicy",
    "BreakerStateName",
    "Bulkhead",
    "BulkheadFull",
    "CircuitBreaker",
    "CircuitOpen",
    "ClientState",
    "DeadlineOutcomeUnknown",
    "Fallback",
    "Outcome",
    "OutcomeUnknown",
    "Permit",
    "RequestOptions",
    "RetryBudget",
    "RetryPolicy",
    "ServiceClient",
    "UpstreamOutcomeUnknown",
    "parse_retry_after",
]
