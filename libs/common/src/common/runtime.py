"""The platform parts one service uses, built from its settings: the composition root's toolbox.

A service's ``bootstrap.py`` creates one ``ServiceRuntime``, asks it for what it needs
(``client("member")``, ``outbox``, ``add_consumer(...)``) and calls ``create_app``: the runtime
starts the relay and consumers with the app, adds their readiness checks, and stops them
cleanly on shutdown. What is wired is the same in every service; only the choices differ.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI

from common.app_factory import create_service_app
from common.auth import (
    JwksKeyCache,
    ServiceAuthenticator,
    UserTokenVerifier,
    build_service_auth,
)
from common.db import Database
from common.faults import FaultTransport, Switchboard, faults_router, http_transport
from common.health import ReadinessCheck, database_check, info_check, kafka_check, outbox_status
from common.http import BreakerPolicy, OutlierPolicy, RetryPolicy, ServiceClient
from common.http.discovery import Discovery
from common.messaging import AvroCodec, ConsumerRunner, Handler, MessagingTables, Outbox, OutboxRelay
from common.settings import ServiceSettings


class Worker(Protocol):
    """A service's own background thread (a reaper, a mail sender): started and stopped with the app."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> Any:
        """What ``/health/ready`` shows for it (informational)."""
        ...


class ServiceRuntime:
    """Database, service auth, clients of other services, outbox relay and consumers of one service."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        tables: MessagingTables,
        uses_kafka: bool = True,
        codec: AvroCodec | None = None,
    ) -> None:
        self.settings = settings
        self.service = settings.service_name
        self.tables = tables
        self.uses_kafka = uses_kafka
        self.db = Database(
            settings.database_url,
            lock_timeout_s=settings.db_lock_timeout_s,
            background_lock_timeout_s=settings.db_background_lock_timeout_s,
        )
        # Fault switches (off unless set by env or /admin/faults): every seam below asks this board.
        self.faults = Switchboard(self.service)
        self.faults.load(settings.faults)
        self.codec = codec or AvroCodec.from_contracts()
        self.service_auth: ServiceAuthenticator = build_service_auth(
            settings.service_auth_mode,
            self.service,
            settings.service_keys_dir,
            settings.service_shared_secret.get_secret_value(),
            ttl_seconds=settings.service_token_ttl_s,
        )
        # Local verification of user tokens from auth's JWKS (cached; survives auth being down).
        self.jwks = JwksKeyCache(settings.jwks_url)
        self.user_tokens = UserTokenVerifier(
            settings.user_token_issuer, settings.user_token_audience, self.jwks
        )
        self.clients: dict[str, ServiceClient] = {}
        self.consumers: list[ConsumerRunner] = []
        self.workers: dict[str, Worker] = {}
        self._outbox: Outbox | None = None
        self.relay: OutboxRelay | None = None

    # -- what a service asks for -------------------------------------------------------------

    def outbox(self) -> Outbox:
        """The transactional outbox; asking for it means this service publishes, so a relay runs."""
        if self._outbox is None:
            self._outbox = Outbox(self.tables, self.codec, producer_name=self.service)
            if not self.settings.outbox_relay:
                return self._outbox  # another instance publishes (see ServiceSettings.outbox_relay)
            self.relay = OutboxRelay.for_kafka(
                self.db,
                self.tables,
                self.settings.kafka_bootstrap_servers,
                self.service,
                poll_interval=self.settings.outbox_poll_interval_s,
                faults=self.faults,
            )
            self._outbox.on_commit(self.relay.wake)
        return self._outbox

    def client(self, upstream: str, base_url: str, **overrides: Any) -> ServiceClient:
        """A resilient client of ``upstream`` that authenticates as this service."""
        if upstream not in self.clients:
            s = self.settings
            options: dict[str, Any] = {
                "caller": self.service,
                "timeout": s.upstream_timeout_s,
                "retry": RetryPolicy(max_attempts=s.upstream_max_attempts),
                "breaker": BreakerPolicy(
                    failure_rate=s.breaker_failure_rate,
                    minimum_calls=s.breaker_minimum_calls,
                    window="time",
                    window_size=s.breaker_window_s,
                    ttl=s.breaker_reset_timeout_s,
                ),
                "outliers": OutlierPolicy(
                    consecutive_failures=s.outlier_consecutive_failures,
                    base_ejection_s=s.outlier_ejection_s,
                    max_ejection_s=s.outlier_max_ejection_s,
                    strategy=s.load_balancing,
                ),
                "max_concurrent": s.bulkhead_max_concurrent,
                "auth": lambda: self.service_auth.headers_for(upstream),
            }
            options.update(overrides)
            # Outgoing faults sit at the transport, under the client's timeout, retries and breaker.
            inner = options.get("transport") or http_transport(options["max_concurrent"])
            options["transport"] = FaultTransport(inner, self.faults, upstream)
            source = Discovery(base_url, refresh_s=s.discovery_refresh_s)
            self.clients[upstream] = ServiceClient(upstream, source, **options)
        return self.clients[upstream]

    def add_consumer(
        self, name: str, topics: Sequence[str], handlers: Mapping[str, Handler]
    ) -> ConsumerRunner:
        """Consume ``topics`` as group ``<service>.<name>``, one handler per event type."""
        runner = ConsumerRunner(
            f"{self.service}.{name}",
            topics,
            self.db,
            self.tables,
            self.codec,
            handlers,
            self.settings.kafka_bootstrap_servers,
            self.service,
            max_attempts=self.settings.consumer_max_attempts,
            faults=self.faults,
        )
        self.consumers.append(runner)
        return runner

    def add_worker(self, name: str, worker: Worker) -> None:
        """Run ``worker`` with the app (after the relay and consumers start, stopped before them)."""
        self.workers[name] = worker

    # -- the app ---------------------------------------------------------------------------------

    def readiness_checks(self) -> list[ReadinessCheck]:
        """Only the database is critical: it is what every API call needs.

        Kafka is informational: events wait in the outbox and consumers catch up later, so a
        service stays in the load balancer while Kafka is down (docs/patterns/errors-and-health.md).
        """
        checks = [database_check(self.db)]
        if self.uses_kafka:
            checks.append(kafka_check(self.settings.kafka_bootstrap_servers, critical=False))
        if self.clients:
            checks.append(
                info_check("breakers", lambda: {n: c.state.breaker for n, c in self.clients.items()})
            )
            checks.append(
                info_check("instances", lambda: {n: dict(c.state.instances) for n, c in self.clients.items()})
            )
        if self.relay is not None:
            relay = self.relay
            checks.append(
                info_check(
                    "outbox",
                    lambda: {
                        **outbox_status(self.db, self.tables.outbox),
                        "relay_healthy": relay.healthy,
                        "error": relay.last_error,
                    },
                )
            )
        elif self._outbox is not None:  # the relay runs in another instance
            checks.append(
                info_check("outbox", lambda: {**outbox_status(self.db, self.tables.outbox), "relay": "off"})
            )
        if self.consumers:
            checks.append(
                info_check(
                    "consumers",
                    lambda: {c.name: {"healthy": c.healthy, "error": c.last_error} for c in self.consumers},
                )
            )
        for name, worker in self.workers.items():
            checks.append(info_check(name, worker.status))
        return checks

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        """Start background workers with the app; stop them (and close pools) when it stops."""
        if self.relay is not None:
            self.relay.start()
        for consumer in self.consumers:
            consumer.start()
        for worker in self.workers.values():
            worker.start()
        try:
            yield
        finally:
            # Threads are joined off the event loop so a slow Kafka close can't stall shutdown.
            for worker in self.workers.values():
                await asyncio.to_thread(worker.stop)
            for consumer in self.consumers:
                await asyncio.to_thread(consumer.stop)
            if self.relay is not None:
                await asyncio.to_thread(self.relay.stop)
            for client in self.clients.values():
                await client.aclose()
            await self.jwks.aclose()
            self.db.dispose()

    def create_app(
        self,
        *,
        title: str,
        description: str = "",
        routers: Sequence[APIRouter] = (),
        public_docs: bool = False,
        **state: Any,
    ) -> FastAPI:
        """The service's FastAPI app with the platform's middleware, health, metrics and workers.

        ``public_docs``: serve the docs on the main port too, not only on the management port.
        """
        return create_service_app(
            service=self.service,
            title=title,
            description=description,
            routers=[*routers, faults_router()],
            readiness=self.readiness_checks(),
            lifespan=self.lifespan,
            request_timeout_s=self.settings.request_timeout_s,
            max_body_bytes=self.settings.max_body_bytes,
            public_docs=public_docs,
            allowed_hosts=self.settings.allowed_hosts,
            state={
                "runtime": self,
                "service_auth": self.service_auth,
                "user_tokens": self.user_tokens,
                "faults": self.faults,
                **state,
            },
        )
