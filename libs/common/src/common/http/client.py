"""ServiceClient: how one service calls another (deadline, retry, breaker, bulkhead, fallback).

One call, outermost first::

    bulkhead slot (fail fast when full; never a breaker failure: it is our own load shedding)
      per attempt: deadline check → breaker admit → send, timeout = min(own, remaining budget)
                   → verdict to the breaker → retry? (backoff or Retry-After, within the deadline)

Retries follow fast failures only (connect errors, broken connections, 502/503/504/429), never a
timeout: a timed-out attempt
already took a whole timeout, so the first 503 for a hung upstream comes after one timeout (plus
the backoff of any fast failures before it), not after ``max_attempts`` of them.

What the caller sees:

- 2xx/3xx and 4xx (except 429) responses are returned: a 404 or 409 is an answer, and the caller
  knows what it means for its own API.
- Everything else (but see ``problems_are_answers`` below) raises a problem, after retries where
  safe: ``UpstreamUnavailable`` (503 with ``Retry-After``: connect error, our own timeout, 5xx,
  429, breaker open, bulkhead full) or ``DeadlineExceeded`` (504: the *request's* budget, not our
  per-call timeout, ran out). A per-call timeout is a 503, not a 504, on purpose: the upstream
  is too slow to be useful, the caller may try again; a 504 tells it its own budget is spent.
- With ``fallback``, those problems are handed to it instead and its response is returned.
- When the request may have been applied although no answer came (a timeout after sending, a
  broken connection, a 5xx that is not a problem document), the problem raised is also an
  ``OutcomeUnknown`` (``UpstreamOutcomeUnknown`` 503, ``DeadlineOutcomeUnknown`` 504): the
  caller's cue to compensate (release a hold) or look the result up.

Options worth knowing:

- ``content=`` (per call) sends bytes as they are, e.g. a body a proxy passes on unread; like
  ``json=`` it is sent again on every retry attempt. The two are mutually exclusive.
- ``problems_are_answers=True`` (per client) returns a 5xx or 429 response whose content type is
  ``application/problem+json`` (503 and 504 included) to the caller unchanged: not retried, not
  raised, and a *success* for the circuit breaker. Such a problem proves the upstream is alive
  and reporting a failure further down (room saying "member is down", with its own
  ``Retry-After``); a proxy must pass that on, not turn it into an outage of its own and open its
  breaker to a healthy upstream. Counted as outcome ``upstream_problem``. Non-problem 5xx,
  connect errors, timeouts and a bare 429 still behave as above. The flip side: the breaker then only
  guards against an upstream that is unreachable, slow or not speaking problems, so use it where
  the caller passes answers on (the gateway), not where it would act on a failed dependency.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from ssl import SSLContext
from typing import Any, Literal, TypedDict, Unpack

import httpx
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from common.context import (
    DEADLINE_AT_HEADER,
    DEADLINE_HEADER,
    REQUEST_ID_HEADER,
    current_deadline,
    request_id_var,
)
from common.errors import PROBLEM_JSON, DeadlineExceeded, ProblemError, UpstreamUnavailable
from common.http.balancer import Balancer, Instance, InstanceStateName, OutlierPolicy
from common.http.breaker import BreakerPolicy, BreakerStateName, CircuitBreaker, CircuitOpen, Permit
from common.http.bulkhead import Bulkhead, BulkheadFull
from common.http.discovery import Discovery, Endpoint, InstanceSource
from common.http.retry import RETRYABLE_STATUSES, RetryBudget, RetryPolicy, parse_retry_after
from common.metrics import UPSTREAM_CALLS, UPSTREAM_LATENCY, UPSTREAM_RETRIES
from common.tracing import ensure_provider

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"

Outcome = Literal[
    "success",
    "client_error",
    "upstream_problem",
    "error",
    "timeout",
    "rejected_open",
    "rejected_bulkhead",
    "deadline",
]
# Gets the problem we would have raised (to log it or mark the result degraded) and returns a
# stand-in response, e.g. a cached or empty one; ``request`` then always returns a response.
Fallback = Callable[[ProblemError], Awaitable[httpx.Response]]
AuthHeaders = Callable[[], Mapping[str, str]]


class RequestOptions(TypedDict, total=False):
    """Keyword arguments shared by ``request`` and the get/post/put/delete shortcuts."""

    json: Any
    content: bytes | None
    params: Mapping[str, Any] | None
    headers: Mapping[str, str] | None
    idempotency_key: str | None
    fallback: Fallback | None


class OutcomeUnknown(Exception):
    """Marks a 503/504 after which the request may still have been applied by the upstream.

    The request reached it (or may have) and no answer came back: a timeout after sending, a
    connection broken mid-way, a 5xx that is not a problem document. A caller that changed
    something with the call (took a hold, say) must undo it idempotently or look it up.
    """


class UpstreamOutcomeUnknown(UpstreamUnavailable, OutcomeUnknown):
    """503: no usable answer, and the request may have been applied."""


class DeadlineOutcomeUnknown(DeadlineExceeded, OutcomeUnknown):
    """504: the budget ran out while the request may have been applied."""


@dataclass(frozen=True)
class ClientState:
    """What health endpoints show about one upstream."""

    upstream: str
    breaker: BreakerStateName
    in_flight: int
    instances: Mapping[str, InstanceStateName]


@dataclass(frozen=True)
class _Failure:
    """A failed attempt, kept until we know whether it will be retried."""

    outcome: Outcome
    detail: str
    retryable: bool
    retry_after: float | None = None
    # Proven never sent (connection refused): safe to send to another instance, whatever the method.
    unsent: bool = False


@cache
def _tls() -> SSLContext:
    """httpx's default TLS settings, loaded once: the CA bundle takes tens of ms per client."""
    return httpx.create_ssl_context()


def _join(base_url: str, path: str) -> str:
    """``base_url`` + ``path`` as httpx's ``base_url`` joins them (a path prefix is kept)."""
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}" if path else base_url


def _is_problem(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == PROBLEM_JSON


class ServiceClient:
    """A pooled, resilient HTTP client for one upstream service. Create one per upstream.

    ``base_url`` names its instances: one URL, a comma-separated list, ``dns+http://name:port``
    entries (``common.http.discovery``), or any ``InstanceSource``. Each attempt goes to the
    instance the balancer picks (``common.http.balancer``: least outstanding, failing instances
    ejected, a retry sent to another instance); the breaker and the bulkhead are per upstream.
    """

    def __init__(
        self,
        upstream: str,
        base_url: str | InstanceSource,
        *,
        caller: str,
        timeout: float = 2.0,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        outliers: OutlierPolicy | None = None,
        max_concurrent: int = 20,
        auth: AuthHeaders | None = None,
        problems_are_answers: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.upstream = upstream
        self.caller = caller
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.problems_are_answers = problems_are_answers
        self._auth = auth
        self._sleep = sleep
        # Jitter only has to spread retries out, not be unguessable.
        self._rng = rng or random.Random()  # noqa: S311
        self._budget = RetryBudget(self.retry.budget_ratio, self.retry.budget_reserve)
        self._breaker = CircuitBreaker(upstream, breaker, service=caller, clock=clock)
        self._bulkhead = Bulkhead(upstream, max_concurrent, service=caller)
        self._source = Discovery(base_url) if isinstance(base_url, str) else base_url
        self._balancer = Balancer(upstream, outliers, service=caller, probe=self._probe, clock=clock)
        if isinstance(self._source, Discovery):  # fixed URLs are known before the first call
            self._balancer.update(self._source.known())
        # The pool is as large as the bulkhead, so calls never queue for a connection unseen.
        # One pool for every instance: its limit is per client, like the bulkhead.
        limits = httpx.Limits(max_connections=max_concurrent, max_keepalive_connections=max_concurrent)
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout, limits=limits, verify=_tls())
        # One client span per attempt (retries and failovers are siblings under the caller's
        # span); it also writes the attempt's traceparent header (W3C, OpenTelemetry's propagator).
        ensure_provider()
        HTTPXClientInstrumentor.instrument_client(self._http)

    @property
    def state(self) -> ClientState:
        """Breaker state, calls in flight and instance states, for ``/health/ready``."""
        return ClientState(
            self.upstream, self._breaker.state, self._bulkhead.in_flight, self._balancer.states()
        )

    async def aclose(self) -> None:
        """Stop re-admission probes and close the connection pool (on application shutdown)."""
        await self._balancer.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def get(self, path: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """``request("GET", path, ...)``."""
        return await self.request("GET", path, **options)

    async def post(self, path: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """``request("POST", path, ...)``."""
        return await self.request("POST", path, **options)

    async def put(self, path: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """``request("PUT", path, ...)``."""
        return await self.request("PUT", path, **options)

    async def delete(self, path: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """``request("DELETE", path, ...)``."""
        return await self.request("DELETE", path, **options)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        fallback: Fallback | None = None,
    ) -> httpx.Response:
        """Call the upstream; return its response or raise (or fall back on) a 503/504 problem."""
        if json is not None and content is not None:
            raise ValueError("pass either json= or content=, not both")
        method = method.upper()
        extra_headers = httpx.Headers(headers)
        key = idempotency_key or extra_headers.get(IDEMPOTENCY_KEY_HEADER)
        if key:
            extra_headers[IDEMPOTENCY_KEY_HEADER] = key
        self._budget.record_call()
        try:
            with self._bulkhead.slot():
                return await self._attempts(
                    method,
                    path,
                    json=json,
                    content=content,
                    params=params,
                    headers=extra_headers,
                    retryable=self.retry.allows(method, key),
                )
        except (UpstreamUnavailable, DeadlineExceeded) as exc:
            if isinstance(exc, BulkheadFull):  # other outcomes were counted where they were known
                self._count("rejected_bulkhead")
                self._rejected("bulkhead full", in_flight=self._bulkhead.in_flight)
            if fallback is None:
                raise
            return await fallback(exc)

    async def _attempts(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        content: bytes | None,
        params: Mapping[str, Any] | None,
        headers: httpx.Headers,
        retryable: bool,
    ) -> httpx.Response:
        retries = 0
        # Did some attempt reach the upstream without us seeing its answer? Then the call's
        # outcome is unknown unless a later attempt gets a real answer.
        unseen = False
        tried: list[Instance] = []
        while True:
            timeout, deadline_binds = self._attempt_timeout(unseen)
            try:
                permit = self._breaker.admit()
            except CircuitOpen as exc:
                self._count("rejected_open")
                self._rejected("breaker open", breaker_state=self._breaker.state)
                if unseen:
                    raise UpstreamOutcomeUnknown(exc.detail, upstream=self.upstream) from exc
                raise
            instance = await self._pick(tried, permit)
            tried.append(instance)

            def verdict(ok: bool | None, instance: Instance = instance, permit: Permit = permit) -> None:
                # The instance's outlier detection first: it says whether the upstream as a
                # whole is to blame (no other instance in rotation), the breaker's business.
                counts = self._balancer.record(instance, ok=ok)
                self._breaker.record(permit, ok=ok if counts else None)

            instance.in_flight += 1
            try:
                response = await self._send(
                    instance.endpoint, method, path, timeout, json, content, params, headers
                )
            except (httpx.TimeoutException, TimeoutError) as exc:
                # A connect or pool timeout proves the request never left; any other may not.
                unseen |= not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
                # Cut short by the caller's budget, the upstream never had its full timeout:
                # that says nothing about its health.
                verdict(None if deadline_binds else False)
                if deadline_binds:  # the budget is spent: no retry could help
                    self._count("deadline")
                    kind = DeadlineOutcomeUnknown if unseen else DeadlineExceeded
                    raise kind(
                        f"{self.upstream} did not answer within the request's deadline",
                        upstream=self.upstream,
                    ) from None
                # Never retried: a hung upstream would make the caller wait a whole timeout per
                # attempt (3 attempts: 3x the timeout before the first 503), and an overloaded
                # one would get more work exactly when it can't cope.
                detail = f"{self.upstream} timed out after {timeout:.2f}s"
                failure = _Failure("timeout", detail, retryable=False)
            except httpx.TransportError as exc:
                verdict(False)
                # Only a connect error proves the request never arrived; a broken read may not.
                refused = isinstance(exc, httpx.ConnectError)
                unseen |= not refused
                detail = f"{self.upstream} unreachable: {type(exc).__name__}"
                # Fast, so worth one more try where repeating is safe (idempotent or keyed, see
                # ``retryable``): typically a pooled keep-alive connection the server had just
                # closed ("Server disconnected without sending a response").
                failure = _Failure("error", detail, retryable=True, unsent=refused)
            except BaseException:
                verdict(None)  # cancelled (or a bug): no verdict
                raise
            else:
                status = response.status_code
                problem = _is_problem(response)
                # A problem 429 is an answer too: the upstream's own throttle (auth's login limit)
                # with its own Retry-After, which a proxy passes on rather than calling it an outage.
                if (status >= 500 or status == 429) and self.problems_are_answers and problem:
                    verdict(True)  # alive, and reporting a failure
                    self._count("upstream_problem")
                    return response
                verdict(status < 500)  # 4xx is the caller's fault
                if status < 500 and status != 429:
                    self._count("success" if status < 400 else "client_error")
                    return response
                # A problem document is the upstream refusing, by its own account; a bare 5xx
                # (a crash, a proxy's page) may come after the work was done.
                unseen |= status >= 500 and not problem
                retry_after = None
                if status in (429, 503):
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                detail = f"{self.upstream} answered {status}"
                failure = _Failure("error", detail, status in RETRYABLE_STATUSES, retry_after)

            finally:
                instance.in_flight -= 1

            # Another instance may take a retry at once: no backoff, no Retry-After (they were
            # this instance's), and even an unkeyed POST when this one refused the connection.
            failover = self._balancer.has_alternative(tried)
            may_repeat = retryable or (failover and failure.unsent)
            delay = self._retry_delay(retries, failure, failover) if may_repeat else None
            if delay is None:
                self._count(failure.outcome)
                unavailable = UpstreamOutcomeUnknown if unseen else UpstreamUnavailable
                retry_after = failure.retry_after or 1
                raise unavailable(failure.detail, upstream=self.upstream, retry_after=retry_after)
            UPSTREAM_RETRIES.labels(service=self.caller, upstream=self.upstream).inc()
            if delay > 0:
                await self._sleep(delay)
            retries += 1

    def _attempt_timeout(self, unseen: bool) -> tuple[float, bool]:
        """This attempt's timeout, and whether the request's deadline (not ours) sets it."""
        deadline = current_deadline()
        if deadline is None:
            return self.timeout, False
        remaining = deadline.remaining()
        if remaining <= 0:
            self._count("deadline")
            kind = DeadlineOutcomeUnknown if unseen else DeadlineExceeded
            raise kind(f"no time budget left to call {self.upstream}", upstream=self.upstream)
        return min(self.timeout, remaining), remaining < self.timeout

    def _retry_delay(self, retries: int, failure: _Failure, failover: bool = False) -> float | None:
        """Seconds to wait before the next attempt, or None when there must not be one.

        ``failover``: the next attempt goes to an instance this call has not tried yet, at once.
        """
        if not failure.retryable or retries + 1 >= self.retry.max_attempts:
            return None
        if failover:
            delay = 0.0
        elif failure.retry_after is not None:
            if failure.retry_after > self.retry.max_retry_after:
                return None
            delay = failure.retry_after
        else:
            delay = self.retry.backoff(retries, self._rng)
        deadline = current_deadline()
        if deadline is not None and delay >= deadline.remaining():
            return None  # the retry could not even start within the caller's budget
        if self._breaker.state == "open":
            return None  # it would be refused anyway: don't make the caller wait for that
        if not self._budget.try_spend():
            return None
        return delay

    async def _pick(self, tried: list[Instance], permit: Permit) -> Instance:
        """The instance for this attempt (discovery first: DNS names are looked up again now and then)."""
        try:
            self._balancer.update(await self._source.endpoints())
            return self._balancer.pick(avoid=tried)
        except LookupError as exc:
            self._breaker.record(permit, ok=False)  # no address at all: the upstream is unreachable
            self._count("error")
            raise UpstreamUnavailable(str(exc), upstream=self.upstream, retry_after=1) from exc
        except BaseException:
            self._breaker.record(permit, ok=None)
            raise

    async def _probe(self, endpoint: Endpoint) -> bool:
        """The re-admission probe of an ejected instance: its readiness answers 2xx."""
        path = self._balancer.policy.probe_path or "/"
        headers = {"Host": endpoint.host} if endpoint.host else {}
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http.get(_join(endpoint.url, path), headers=headers)
        except (httpx.HTTPError, TimeoutError):
            return False
        return response.is_success

    async def _send(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        limit: float,
        json: Any,
        content: bytes | None,
        params: Mapping[str, Any] | None,
        headers: httpx.Headers,
    ) -> httpx.Response:
        outgoing = httpx.Headers(headers)
        outgoing.update(self._context_headers(limit))
        if endpoint.host:  # an address found by DNS: the callee checks the name
            outgoing["Host"] = endpoint.host
        # httpx's timeouts bound each socket operation; a response trickling in byte by byte
        # could outlive them. asyncio.timeout bounds the attempt as a whole.
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                return await self._http.request(
                    method,
                    _join(endpoint.url, path),
                    json=json,
                    content=content,
                    params=params,
                    headers=outgoing,
                    timeout=limit,
                )
        finally:
            UPSTREAM_LATENCY.labels(service=self.caller, upstream=self.upstream).observe(
                time.perf_counter() - started
            )

    def _context_headers(self, limit: float) -> dict[str, str]:
        """Request id, the callee's budget and our credentials (the instrumentation adds traceparent)."""
        headers = {
            # The callee's budget is what we will wait for this attempt: never more than ours.
            # Relative and absolute (see ``Deadline.from_headers``): a request that waits in a
            # frozen callee's socket queue must not start a fresh budget when it is finally read.
            DEADLINE_HEADER: str(int(limit * 1000)),
            DEADLINE_AT_HEADER: str(int((time.time() + limit) * 1000)),
        }
        request_id = request_id_var.get()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        if self._auth is not None:
            headers.update(self._auth())  # per attempt: service tokens are short-lived
        return headers

    def _rejected(self, what: str, **details: str | int) -> None:
        """A call refused before any attempt: an event on the caller's span (no attempt span exists)."""
        attributes: dict[str, str | int] = {"peer.service": self.upstream, "caller": self.caller}
        attributes.update({f"{key}": value for key, value in details.items()})
        trace.get_current_span().add_event(what, attributes)

    def _count(self, outcome: Outcome) -> None:
        UPSTREAM_CALLS.labels(service=self.caller, upstream=self.upstream, outcome=outcome).inc()
