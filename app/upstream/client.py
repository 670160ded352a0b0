"""One long-lived GetProxySession client and the policy around each call, errors mapped.

botocore's own retries are off (one attempt per call): this module retries throttling,
5xx and transport faults itself with jittered exponential backoff, so that the attempt
budget (`GATEWAY_UPSTREAM_MAX_ATTEMPTS`) and the one deadline per request
(`GATEWAY_UPSTREAM_TIMEOUT_SECONDS`) cover every attempt. botocore's standard mode would
not retry `ThrottledClientException` anyway: it is not in its throttling list.

The upstream is AWS or nothing. aiobotocore's `AIOHTTPSession` lets aiohttp follow
redirects (it never passes `allow_redirects`) and reads each reply whole into memory. The
client's session class, chosen through aiobotocore's public
`AioConfig(http_session_cls=...)`, is `GatewayHTTPSession`: it hands aiobotocore a view of
its aiohttp session that never follows a redirect (the 3xx comes back to botocore as an
error reply, mapped here), and reads at most `GATEWAY_UPSTREAM_MAX_BODY_BYTES` of a reply
before refusing it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from contextlib import AsyncExitStack
from typing import Any, Protocol

import aioboto3
import aiohttp
from aiobotocore.awsrequest import AioAWSResponse
from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError
from opentelemetry import trace

from app.domain.errors import (
    BadUserInput,
    CircuitOpen,
    Forbidden,
    GatewayError,
    NotFound,
    ServiceUnavailable,
    Throttled,
    UpstreamError,
    UpstreamFailure,
    UpstreamFault,
    UpstreamTimeout,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)
from app.domain.model import ProxySession
from app.domain.types import BreakerState, CallRecord, SessionKey
from app.settings import Settings
from app.upstream import tracing, tuning
from app.upstream.breaker import CircuitBreaker
from app.upstream.observer import UpstreamObserver
from app.upstream.retry_budget import RetryBudget
from app.upstream.tracing import AttemptTracer

log = logging.getLogger(__name__)

SERVICE = "chime-sdk-voice"
OPERATION = "GetProxySession"

AWS_ERRORS: dict[str, type[GatewayError]] = {
    "BadRequestException": BadUserInput,
    "ForbiddenException": Forbidden,
    "NotFoundException": NotFound,
    "UnauthorizedClientException": UpstreamUnauthorized,
    "ThrottledClientException": Throttled,
    "ServiceFailureException": UpstreamFailure,
    "ServiceUnavailableException": ServiceUnavailable,
}
"""AWS error code -> gateway error; any code missing here is an `UpstreamError`."""

# Most specific first: the first isinstance match wins.
TRANSPORT_ERRORS: dict[type[Exception], type[GatewayError]] = {
    ReadTimeoutError: UpstreamTimeout,
    ConnectTimeoutError: UpstreamUnavailable,
    EndpointConnectionError: UpstreamUnavailable,
    HTTPClientError: UpstreamUnavailable,
    ResponseParserError: UpstreamUnavailable,
    NoCredentialsError: UpstreamUnauthorized,
    PartialCredentialsError: UpstreamUnauthorized,
    CredentialRetrievalError: UpstreamUnauthorized,
    BotoCoreError: UpstreamUnavailable,
}

RETRYABLE: tuple[type[GatewayError], ...] = (
    Throttled,
    UpstreamFailure,
    ServiceUnavailable,
    UpstreamUnavailable,
)

NO_REGION = "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION (or a profile's region)"

BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 1.0


BARE_STATUS_ERRORS: dict[int, type[GatewayError]] = {
    429: Throttled,
    503: ServiceUnavailable,
}
"""A bare status (no AWS error shape) -> its fault; any other bare 5xx is UpstreamFailure."""

REDIRECTS = frozenset({301, 302, 303, 307, 308})


def map_bare_status(status: int) -> GatewayError | None:
    """The fault a reply without AWS's error shape stands for, by its status alone.

    A load balancer's page for 429/5xx is the fault its status says; a redirect is never
    followed (the upstream is AWS or nothing). None: any other status keeps its code.
    """
    if status in REDIRECTS:
        return UpstreamUnavailable(f"The upstream answered a redirect ({status}); not followed.")
    error_type = BARE_STATUS_ERRORS.get(status)
    if error_type is None and 500 <= status <= 599:
        error_type = UpstreamFailure
    if error_type is None:
        return None
    return error_type(f"The upstream answered a bare {status} (no AWS error).")


def map_exception(exc: Exception) -> GatewayError:
    """Turn whatever the client raised into the gateway's error, keeping the AWS code."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code") or "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        # botocore names an error by its status when the reply carries no AWS code.
        if isinstance(status, int) and code == str(status):
            bare = map_bare_status(status)
            if bare is not None:
                return bare
        error_type = AWS_ERRORS.get(code, UpstreamError)
        return error_type(f"AWS answered {code}.", upstream_code=code)
    for exc_type, error_type in TRANSPORT_ERRORS.items():
        if isinstance(exc, exc_type):
            return error_type(f"{error_type.title}: {type(exc).__name__}.")
    # Raised from inside the client while reading the reply: botocore could not make sense of it.
    return UpstreamUnavailable(f"Malformed upstream reply ({type(exc).__name__}).")


def backoff_seconds(attempt: int) -> float:
    """Full-jitter exponential backoff before retry number `attempt` (1-based)."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


SESSION_SEAM = "_get_session"
"""The `AIOHTTPSession` method that hands `send` its aiohttp session, overridden here."""


class ReplyTooLarge(BotoCoreError):  # type: ignore[misc]  # botocore ships no types
    """The upstream reply is larger than the gateway reads."""

    fmt = "Upstream reply larger than {limit} bytes"


class _NoRedirects:
    """An aiohttp session whose requests never follow a redirect."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def request(self, method: str, url: Any, **kwargs: Any) -> Any:
        kwargs["allow_redirects"] = False
        return self._session.request(method, url, **kwargs)


class _Body:
    """The already read reply body, where aiobotocore's response reads it from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body


class GatewayHTTPSession(AIOHTTPSession):  # type: ignore[misc]  # aiobotocore ships no types
    """aiobotocore's aiohttp session, redirects refused and replies bounded."""

    max_body_bytes = 65536

    async def _get_session(self, proxy_url: Any) -> Any:
        return _NoRedirects(await super()._get_session(proxy_url))

    async def send(self, request: Any) -> Any:
        streamed = request.stream_output
        request.stream_output = True  # read the body here, bounded, not whole in `send`
        try:
            response = await super().send(request)
        finally:
            request.stream_output = streamed
        if streamed:
            return response
        body = await read_at_most(response.raw, self.max_body_bytes, request.url)
        return AioAWSResponse(response.url, response.status_code, response.headers, _Body(body))


async def read_at_most(raw: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    """The reply body, or ReplyTooLarge once it is known to exceed `limit` bytes.

    A declared Content-Length over the limit is refused before reading anything; otherwise
    at most `limit + 1` bytes are read. The connection is dropped on refusal.
    """
    try:
        if raw.content_length is not None and raw.content_length > limit:
            raise ReplyTooLarge(limit=limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await raw.content.read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ReplyTooLarge(limit=limit)
        raw.release()
        return b"".join(chunks)
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raw.close()
        raise ConnectionClosedError(error=exc, endpoint_url=url) from exc
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raw.close()
        raise ReadTimeoutError(endpoint_url=url, error=exc) from exc
    except aiohttp.ClientError as exc:
        raw.close()
        raise HTTPClientError(error=exc) from exc
    except BaseException:  # refused, cancelled: the rest of the reply is never read
        raw.close()
        raise


def session_class(max_body_bytes: int) -> type[GatewayHTTPSession]:
    """A `GatewayHTTPSession` reading at most `max_body_bytes` of a reply."""
    if not callable(getattr(AIOHTTPSession, SESSION_SEAM, None)):
        # aiobotocore changed under us: refuse to start rather than follow redirects.
        raise RuntimeError(
            f"aiobotocore's AIOHTTPSession has no {SESSION_SEAM}: redirects cannot be refused"
        )
    return type("BoundedHTTPSession", (GatewayHTTPSession,), {"max_body_bytes": max_body_bytes})


class Permit(Protocol):
    """Lets an AWS call go (the fleet's quota), or raises Throttled when none can in time."""

    async def acquire(self, deadline: float) -> None:
        """Wait for leave to call AWS, until `deadline` (event-loop time) at the latest."""


class Upstream:
    """One long-lived `chime-sdk-voice` client and the policy around each call."""

    def __init__(
        self,
        settings: Settings,
        observer: UpstreamObserver,
        permit: Permit | None = None,
        tracer: AttemptTracer | None = None,
    ) -> None:
        self._settings = settings
        self._tracer = tracer
        self._permit = permit
        self._observer = observer
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._shortcuts: frozenset[str] = frozenset()
        self._slots = asyncio.Semaphore(settings.upstream_max_concurrency)
        self._breaker = CircuitBreaker(
            settings.breaker_failure_threshold, settings.breaker_reset_seconds, observer
        )
        self._budget = RetryBudget(
            settings.retry_budget_ratio, settings.retry_budget_window_seconds
        )

    async def start(self) -> None:
        """Build the client (credentials, region and endpoint from the standard AWS chain)."""
        config = AioConfig(
            # No redirect followed, no reply read past GATEWAY_UPSTREAM_MAX_BODY_BYTES.
            http_session_cls=session_class(self._settings.upstream_max_body_bytes),
            connect_timeout=min(
                self._settings.upstream_connect_timeout_seconds,
                self._settings.upstream_timeout_seconds,
            ),
            read_timeout=self._settings.upstream_timeout_seconds,
            max_pool_connections=self._settings.upstream_max_pool_connections,
            retries={"mode": "standard", "total_max_attempts": 1},
            tcp_keepalive=True,
            user_agent_appid="proxy-session-gateway",
            # The ids were validated before any call (app.domain.model.validate_key); botocore
            # would walk the input shape again on every call for nothing.
            parameter_validation=False,
        )
        core = get_session()
        shortcuts = (
            tuning.install_timestamp_parser(core) if self._settings.botocore_tuning else frozenset()
        )
        session = aioboto3.Session(botocore_session=core, region_name=self._settings.aws_region)
        try:
            client = session.client(SERVICE, config=config)
            self._client = await self._stack.enter_async_context(client)
        except NoRegionError as exc:
            raise RuntimeError(NO_REGION) from exc
        if not self._client.meta.region_name:
            await self.close()
            raise RuntimeError(NO_REGION)
        if self._settings.botocore_tuning:
            shortcuts |= tuning.tune_client(self._client)
        self._shortcuts = shortcuts
        log.info(
            "botocore shortcuts applied: %s",
            ", ".join(sorted(self._shortcuts)) or "none",
            extra={"shortcuts": sorted(self._shortcuts)},
        )
        log.debug(
            "upstream client ready",
            extra={
                "region": self._client.meta.region_name,
                "endpoint": self._client.meta.endpoint_url,
            },
        )
        if self.operation_deprecated:
            log.warning(
                "AWS marks %s deprecated: Amazon Chime SDK proxy sessions reached end of "
                "support on 2026-04-07; calls may start failing at any time",
                OPERATION,
            )

    async def close(self) -> None:
        """Close the client and its connection pool."""
        await self._stack.aclose()
        self._client = None

    async def __aenter__(self) -> Upstream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def shortcuts(self) -> frozenset[str]:
        """The botocore shortcuts (`tuning.SHORTCUTS`) in effect on the client."""
        return self._shortcuts

    @property
    def operation_deprecated(self) -> bool:
        """Whether the loaded service model marks GetProxySession deprecated."""
        return bool(self._client.meta.service_model.operation_model(OPERATION).deprecated)

    async def get_proxy_session(
        self, key: SessionKey, deadline: float | None = None, record: CallRecord | None = None
    ) -> ProxySession:
        """Call GetProxySession under one deadline (`GATEWAY_UPSTREAM_TIMEOUT_SECONDS` from
        now, or `deadline` in event-loop time when that is sooner), retrying faults within
        the attempt budget; each attempt's span context goes in `record` (traced).

        Refused at once (CircuitOpen) while the breaker is open.
        """
        if not self._breaker.allow():
            raise CircuitOpen(
                "AWS is failing; the gateway is not calling it for now.",
                retry_after=self._breaker.retry_after(),
            )
        probe = self._breaker.probe  # this call's, when it is the half-open probe
        loop = asyncio.get_running_loop()
        own = loop.time() + self._settings.upstream_timeout_seconds
        deadline = own if deadline is None else min(own, deadline)
        try:
            async with asyncio.timeout_at(deadline):
                return await self._call_with_retries(key, deadline, record)
        except TimeoutError as exc:
            raise UpstreamTimeout("The upstream deadline passed.") from exc
        finally:
            # A probe that ended with no outcome (cancelled, or out of time before it got a
            # slot) would otherwise keep later calls refused.
            if probe is not None:
                self._breaker.record_abandoned(probe)

    async def _call_with_retries(
        self, key: SessionKey, deadline: float, record: CallRecord | None
    ) -> ProxySession:
        loop = asyncio.get_running_loop()
        self._budget.record_call()
        attempt = 1
        while True:
            if self._permit is not None:  # the fleet's quota: each attempt is an AWS call
                await self._permit.acquire(deadline)
            try:
                return await self._attempt(key, deadline, attempt, record)
            except GatewayError as error:
                if (
                    not isinstance(error, RETRYABLE)
                    or attempt >= self._settings.upstream_max_attempts
                    or self._breaker.state is not BreakerState.CLOSED  # opened, or a probe
                ):
                    raise
                pause = backoff_seconds(attempt)
                if loop.time() + pause >= deadline:
                    raise
                if not self._budget.try_retry():
                    self._observer.upstream_retry("budget_exhausted")
                    raise
                self._observer.upstream_retry("made")
                await asyncio.sleep(pause)
                attempt += 1

    async def _attempt(
        self, key: SessionKey, deadline: float, number: int, record: CallRecord | None
    ) -> ProxySession:
        if self._tracer is None:
            return await self._measured(key, deadline, None)
        with self._tracer.attempt(number, record) as span:
            return await self._measured(key, deadline, span)

    async def _measured(
        self, key: SessionKey, deadline: float, span: trace.Span | None
    ) -> ProxySession:
        """One attempt, counted by the metrics and the breaker (and its span, if traced)."""
        async with self._slots:
            started = time.perf_counter()
            try:
                session, metadata = await self._call(key)
            except asyncio.CancelledError:
                # The deadline cancels the attempt in flight: count it, or a hung AWS goes
                # unseen by metrics and by the breaker. Any other cancellation says nothing
                # about AWS (a probe's is released in `get_proxy_session`).
                if asyncio.get_running_loop().time() >= deadline:
                    self._observer.upstream_attempt(
                        UpstreamTimeout.code, "none", time.perf_counter() - started
                    )
                    self._breaker.record_fault()
                    if span is not None:
                        tracing.failed(span, UpstreamTimeout("The AWS call timed out."))
                raise
            except GatewayError as error:
                if span is not None:
                    cause = error.__cause__
                    metadata = (
                        cause.response.get("ResponseMetadata")
                        if isinstance(cause, ClientError)
                        else None
                    )
                    tracing.failed(span, error, metadata)
                self._observer.upstream_attempt(
                    error.code, _bounded_code(error.upstream_code), time.perf_counter() - started
                )
                if isinstance(error, UpstreamFault):
                    self._breaker.record_fault()
                else:
                    self._breaker.record_success()
                if isinstance(error, UpstreamFault | UpstreamUnauthorized | UpstreamError):
                    log.warning(
                        "upstream attempt failed",
                        extra={"outcome": error.code, "upstream_code": error.upstream_code},
                    )
                raise
            self._observer.upstream_attempt("ok", "none", time.perf_counter() - started)
            self._breaker.record_success()
            if span is not None:
                tracing.answered(span, metadata)
            return session

    async def _call(self, key: SessionKey) -> tuple[ProxySession, object]:
        """One GetProxySession request, its reply turned into the domain model or our error;
        with the reply's `ResponseMetadata`."""
        try:
            reply = await self._client.get_proxy_session(
                VoiceConnectorId=key[0], ProxySessionId=key[1]
            )
        except Exception as exc:
            raise map_exception(exc) from exc
        member = reply.get("ProxySession")
        try:
            if not isinstance(member, dict):
                raise TypeError("no ProxySession member")
            if not _names_key(member, key):
                log.warning("upstream reply names other ids than asked")
                raise UpstreamUnavailable("The upstream reply names other ids than asked.")
            return ProxySession.from_aws(member, key), reply.get("ResponseMetadata")
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            log.warning("malformed upstream reply", extra={"error_type": type(exc).__name__})
            raise UpstreamUnavailable("Malformed upstream reply.") from exc


def _names_key(member: dict[str, Any], key: SessionKey) -> bool:
    """Whether the ids the reply names (absent ones are the request's) are the key's."""
    return bool(
        member.get("VoiceConnectorId", key[0]) == key[0]
        and member.get("ProxySessionId", key[1]) == key[1]
    )


def _bounded_code(code: str | None) -> str:
    """Keep the metrics label a bounded set: known codes, else `other`."""
    if code is None:
        return "none"
    return code if code in AWS_ERRORS else "other"


__all__ = ["AWS_ERRORS", "RETRYABLE", "Upstream", "map_bare_status", "map_exception"]
