"""The dispatcher: claims due deliveries from the outbox and POSTs them, signed.

At-least-once: a delivery is claimed under a lease before its HTTP attempt and
settled after it; a dispatcher killed in between leaves the lease to lapse and
the next dispatcher (the restarted gateway, or a replica) tries again with the
same event ``id`` and body. Concurrency is bounded by ``max_concurrency``;
every attempt is recorded (status, latency, error) and logged, without secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import aiohttp
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from runinfra_gateway import __version__
from runinfra_gateway.peer_text import printable
from runinfra_gateway.store import Database
from runinfra_gateway.webhooks.events import new_id
from runinfra_gateway.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from runinfra_gateway.webhooks.outbox import add_commit_listener, remove_commit_listener
from runinfra_gateway.webhooks.retry import next_attempt_delay, parse_retry_after
from runinfra_gateway.webhooks.secret_box import SecretBox, SecretBoxError
from runinfra_gateway.webhooks.settings import WebhookSettings
from runinfra_gateway.webhooks.signing import SIGNATURE_HEADER, sign
from runinfra_gateway.webhooks.url_policy import CheckedResolver, UrlRefused, parse_endpoint_url

__all__ = ["AttemptResult", "DeliveryJob", "Dispatcher", "EventLogger", "live_secrets"]

logger = logging.getLogger("runinfra_gateway.webhooks")

#: ``log_event("webhook_attempt", **fields)``: the gateway's structured log (its ``AccessLog.event``).
EventLogger = Callable[..., None]


class _Unsignable(Exception):
    """The delivery cannot be signed, so it is not sent."""


@dataclass(frozen=True)
class DeliveryJob:
    """A claimed delivery: everything one attempt needs, read in the claiming transaction."""

    delivery_id: str
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    body: bytes
    attempt: int
    lease_token: str
    secrets: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class AttemptResult:
    """What one HTTP attempt produced."""

    started_at: float
    latency_ms: float
    status: int | None
    error: str | None
    retry_after: float | None
    response_excerpt: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def live_secrets(endpoint: WebhookEndpoint, box: SecretBox, now: float) -> tuple[str, ...]:
    """The secrets that sign for ``endpoint`` now: the current one, and the previous during its overlap."""
    current = box.open(endpoint.secret_sealed, endpoint_id=endpoint.id)
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_sealed is not None and expires is not None and now < expires:
        return (current, box.open(endpoint.previous_secret_sealed, endpoint_id=endpoint.id))
    return (current,)


def _secrets_or_none(endpoint: WebhookEndpoint, box: SecretBox, now: float) -> tuple[str, ...]:
    # A secret that no longer opens (the data directory's master key was replaced) fails
    # this delivery's attempts on the record instead of blocking every other delivery.
    try:
        return live_secrets(endpoint, box, now)
    except SecretBoxError:
        return ()


def claim_due(
    session: Session, *, box: SecretBox, limit: int, lease_seconds: float, now: float
) -> list[DeliveryJob]:
    """Lease up to ``limit`` due deliveries of enabled endpoints.

    The conditional update makes the claim safe when several dispatchers share one database.
    """
    rows = session.execute(
        select(WebhookDelivery, WebhookEndpoint, WebhookEvent)
        .join(WebhookEndpoint, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
        .join(WebhookEvent, WebhookDelivery.event_id == WebhookEvent.id)
        .where(
            WebhookDelivery.state == "pending",
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.enabled.is_(True),
            or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    ).all()
    jobs = []
    for delivery, endpoint, event in rows:
        token = new_id("lease")
        taken = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery.id,
                WebhookDelivery.state == "pending",
                or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
            )
            .values(lease_token=token, lease_until=now + lease_seconds)
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) != 1:
            continue
        jobs.append(
            DeliveryJob(
                delivery_id=delivery.id,
                event_id=event.id,
                event_type=event.type,
                endpoint_id=endpoint.id,
                url=endpoint.url,
                body=event.body,
                attempt=delivery.attempts + 1,
                lease_token=token,
                secrets=_secrets_or_none(endpoint, box, now),
            )
        )
    return jobs


def record_attempt(
    session: Session, job: DeliveryJob, result: AttemptResult, *, settings: WebhookSettings, rng: random.Random
) -> str:
    """Store the attempt and move the delivery on; returns the attempt's outcome."""
    now = time.time()
    delivery = session.get(WebhookDelivery, job.delivery_id)
    endpoint = session.get(WebhookEndpoint, job.endpoint_id)
    outcome, next_at = "retry", None
    if result.delivered:
        outcome = "delivered"
    elif result.status == 410:
        outcome = "endpoint_disabled"
    else:
        delay = next_attempt_delay(job.attempt, settings, retry_after=result.retry_after, rng=rng)
        if delay is None:
            outcome = "failed"
        else:
            next_at = now + delay
    if delivery is None:  # its endpoint was deleted while this attempt was in flight: nothing to record it on
        return outcome
    session.add(
        WebhookAttempt(
            delivery_id=job.delivery_id,
            event_id=job.event_id,
            endpoint_id=job.endpoint_id,
            attempt=job.attempt,
            started_at=result.started_at,
            status=result.status,
            latency_ms=result.latency_ms,
            error=result.error,
            outcome=outcome,
            next_attempt_at=next_at,
            response_excerpt=result.response_excerpt,
        )
    )
    if delivery.lease_token != job.lease_token:
        # Our lease lapsed and another dispatcher owns the delivery now: the
        # attempt is on record, its outcome is theirs to settle.
        return outcome
    delivery.attempts = job.attempt
    delivery.lease_token = None
    delivery.lease_until = None
    delivery.last_error = result.error
    if outcome == "retry" and next_at is not None:
        delivery.next_attempt_at = next_at
    else:
        delivery.state = "delivered" if outcome == "delivered" else "failed"
        delivery.completed_at = now
    if endpoint is not None and outcome == "endpoint_disabled":
        _disable(endpoint, "the receiver answered 410 Gone", now)
    elif endpoint is not None and outcome == "failed":
        _disable(endpoint, f"persistent failure: {job.attempt} attempts of event {job.event_id} failed", now)
    return outcome


def record_attempts(
    session: Session,
    batch: list[tuple[DeliveryJob, AttemptResult]],
    *,
    settings: WebhookSettings,
    rng: random.Random,
) -> list[str]:
    """:func:`record_attempt` for each finished attempt, in one transaction."""
    return [record_attempt(session, job, result, settings=settings, rng=rng) for job, result in batch]


def _disable(endpoint: WebhookEndpoint, reason: str, now: float) -> None:
    if endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_reason = reason
        endpoint.updated_at = now
        logger.warning("webhook.endpoint_disabled endpoint=%s reason=%r", endpoint.id, reason)


class Dispatcher:
    """Sends due deliveries with bounded concurrency until closed."""

    def __init__(
        self,
        db: Database,
        settings: WebhookSettings,
        box: SecretBox,
        *,
        rng: random.Random | None = None,
        log_event: EventLogger | None = None,
    ) -> None:
        self._log_event = log_event
        self._db = db
        self._settings = settings
        self._box = box
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        # Attempts done but not yet recorded: written together, one transaction per batch,
        # so the dispatcher costs the shared database thread little however busy it is.
        self._results: list[tuple[DeliveryJob, AttemptResult]] = []
        self._results_ready = asyncio.Event()
        self._recorder: asyncio.Task[None] | None = None
        self._drained = False
        self._on_commit: Callable[[], object] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._stopping = False

    async def start(self) -> None:
        tls = ssl.create_default_context()
        if self._settings.tls_ca_file is not None:
            tls.load_verify_locations(cafile=self._settings.tls_ca_file)
        connector = aiohttp.TCPConnector(
            resolver=CheckedResolver(self._settings),
            use_dns_cache=False,
            limit=self._settings.max_concurrency,
            ssl=tls,
        )
        # trust_env stays off: no proxy from the environment may carry a delivery elsewhere.
        self._http = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False)
        loop = asyncio.get_running_loop()
        self._on_commit = lambda: loop.call_soon_threadsafe(self._wake.set)
        add_commit_listener(self._on_commit)
        self._runner = asyncio.create_task(self._run(), name="runinfra-webhooks-dispatcher")
        self._recorder = asyncio.create_task(self._record_loop(), name="runinfra-webhooks-recorder")

    def wake(self) -> None:
        """Look for due deliveries now instead of at the next poll."""
        self._wake.set()

    async def close(self, grace_seconds: float | None = None) -> None:
        """Stop claiming; let attempts in flight finish (bounded by the timeout), then close."""
        self._stopping = True
        if self._on_commit is not None:
            remove_commit_listener(self._on_commit)
        self._wake.set()
        if self._runner is not None:
            await self._runner
        if self._inflight:
            grace = self._settings.timeout_seconds if grace_seconds is None else grace_seconds
            _done, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in pending:
                task.cancel()  # its lease lapses and the next dispatcher tries again
            if pending:
                await asyncio.wait(pending)
        if self._recorder is not None:
            self._drained = True  # no attempt is running any more: record what is left, then stop
            self._results_ready.set()
            await self._recorder
        if self._http is not None:
            await self._http.close()

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before the claim, not after it: a wake-up that arrives while the claim
            # runs (a delivery enqueued just then) must not be lost until the next poll.
            self._wake.clear()
            free = self._settings.max_concurrency - len(self._inflight)
            jobs: list[DeliveryJob] = []
            if free > 0:
                try:
                    jobs = await self._db.run(
                        partial(
                            claim_due,
                            box=self._box,
                            limit=free,
                            lease_seconds=self._settings.lease_seconds,
                            now=time.time(),
                        )
                    )
                except Exception:
                    logger.exception("webhook.claim_failed")
            for job in jobs:
                task = asyncio.create_task(self._deliver(job))
                self._inflight.add(task)
                task.add_done_callback(self._finished)
            if jobs and len(jobs) == free:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval_seconds)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _deliver(self, job: DeliveryJob) -> None:
        result = await self.attempt(job)
        self._results.append((job, result))
        self._results_ready.set()

    async def _record_loop(self) -> None:
        while True:
            if not self._results:
                if self._drained:
                    return
                await self._results_ready.wait()
                self._results_ready.clear()
                continue
            batch, self._results = self._results, []
            try:
                outcomes = await self._db.run(
                    partial(record_attempts, batch=batch, settings=self._settings, rng=self._rng)
                )
            except Exception:
                # Not recorded: the leases lapse and these deliveries are tried again (same ids).
                logger.exception("webhook.record_failed deliveries=%s", ",".join(j.delivery_id for j, _ in batch))
                continue
            for (job, result), outcome in zip(batch, outcomes):
                self._log_attempt(job, result, outcome)

    def _log_attempt(self, job: DeliveryJob, result: AttemptResult, outcome: str) -> None:
        if self._log_event is not None:
            self._log_event(
                "webhook_attempt",
                delivery=job.delivery_id,
                event_id=job.event_id,
                type=job.event_type,
                endpoint=job.endpoint_id,
                attempt=job.attempt,
                status=result.status,
                latency_ms=round(result.latency_ms, 1),
                outcome=outcome,
                error=result.error,
            )
        logger.info(
            "webhook.attempt delivery=%s event=%s type=%s endpoint=%s attempt=%d status=%s latency_ms=%.1f "
            "outcome=%s error=%s",
            job.delivery_id,
            job.event_id,
            job.event_type,
            job.endpoint_id,
            job.attempt,
            result.status if result.status is not None else "-",
            result.latency_ms,
            outcome,
            repr(result.error) if result.error else "-",
        )

    async def attempt(self, job: DeliveryJob) -> AttemptResult:
        """One signed POST of ``job``; never raises for a network or receiver failure."""
        assert self._http is not None, "Dispatcher.start() first"
        started = time.time()
        clock = time.monotonic()
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        excerpt: str | None = None
        try:
            if not job.secrets:
                raise _Unsignable("the endpoint's signing secret does not open with this data directory's master key")
            # Checked again at every attempt: the operator's allow-list may have changed.
            parse_endpoint_url(job.url, self._settings)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": f"runinfra-gateway-webhooks/{__version__}",
                SIGNATURE_HEADER: sign(job.secrets, int(time.time()), job.body),
                "RunInfra-Event-Id": job.event_id,
                "RunInfra-Event-Type": job.event_type,
                "RunInfra-Delivery-Id": job.delivery_id,
                "RunInfra-Delivery-Attempt": str(job.attempt),
            }
            async with self._http.post(
                job.url,
                data=job.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_seconds),
            ) as response:
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                # The status decides; the start of the body is only kept for the log, and a
                # body that stalls or breaks after a 2xx status does not undo the delivery.
                with contextlib.suppress(TimeoutError, aiohttp.ClientError):
                    raw = await response.content.read(self._settings.response_excerpt_bytes)
                    excerpt = raw.decode("utf-8", "replace") or None
                if 300 <= status < 400:
                    error = f"redirect ({status}) not followed"
                elif not 200 <= status < 300:
                    error = f"receiver answered {status}"
        except UrlRefused as exc:
            error = f"refused by URL policy: {exc}"
        except _Unsignable as exc:
            error = f"not sent: {exc}"
        except TimeoutError:
            error = f"timed out after {self._settings.timeout_seconds:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        return AttemptResult(
            started_at=started,
            latency_ms=(time.monotonic() - clock) * 1000,
            status=status,
            error=None if error is None else printable(error, 500),
            retry_after=retry_after,
            response_excerpt=None if excerpt is None else printable(excerpt, self._settings.response_excerpt_bytes),
        )
