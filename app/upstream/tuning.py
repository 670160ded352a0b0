"""botocore's per-call costs cut for one long-lived client, the wire unchanged: timestamps
parsed by the standard library, the User-Agent built once per feature set, SigV4 signed by a
faster subclass, two handlers that can only do nothing here unregistered, the endpoint
resolved once per operation. Each shortcut is
held to botocore's own output by the tests and reports whether it applied;
`GATEWAY_BOTOCORE_TUNING=off` turns them all off.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any

from aiobotocore.session import AioSession
from botocore.auth import SIGNED_HEADERS_BLACKLIST, SigV4Auth, _host_from_url
from botocore.awsrequest import AWSRequest
from botocore.context import get_context
from botocore.handlers import add_recursion_detection_header
from botocore.utils import parse_timestamp as botocore_parse_timestamp

log = logging.getLogger(__name__)

# Distinct botocore feature sets seen per client; a handful in practice.
USER_AGENT_VARIANTS = 32
# Signing keys (one per secret, day, region and service) and hosts kept; a few a day.
SIGNING_KEYS = 16

SHORTCUTS = frozenset(
    {"timestamps", "user_agent", "sigv4", "idle_retry_check", "recursion_header", "endpoint"}
)
"""Every shortcut by the name `install_timestamp_parser` and `tune_client` report it."""

_UNSIGNED_HEADERS = frozenset(SIGNED_HEADERS_BLACKLIST)


def parse_timestamp(value: object) -> datetime:
    """ISO 8601 by the standard library (UTC when no offset), anything else by botocore."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    result: datetime = botocore_parse_timestamp(value)
    return result


def install_timestamp_parser(session: AioSession) -> frozenset[str]:
    """Make clients of `session` parse timestamps with `parse_timestamp`; what applied."""
    parsers = session.get_component("response_parser_factory")
    set_defaults = getattr(parsers, "set_parser_defaults", None)
    if set_defaults is None:
        return _not_applied("timestamps", "botocore's parser factory takes no defaults")
    set_defaults(timestamp_parser=parse_timestamp)
    return frozenset({"timestamps"})


def tune_client(client: Any) -> frozenset[str]:
    """Apply the per-call savings that live on the client object; the names of those applied."""
    return (
        memoize_user_agent(client)
        | use_fast_sigv4(client)
        | drop_idle_handlers(client)
        | memoize_endpoint(client)
    )


def _not_applied(shortcut: str, why: str) -> frozenset[str]:
    """Warn that a shortcut could not apply (botocore changed under it); none applied."""
    log.warning("botocore shortcut %s not applied: %s", shortcut, why)
    return frozenset()


def drop_idle_handlers(client: Any) -> frozenset[str]:
    """Unregister two per-call botocore handlers that can only do nothing for this client.

    - The retry check: the client makes one attempt per call (the gateway retries itself,
      see `app.upstream.client`), so botocore's answer is always "no retry".
    - Lambda recursion detection: it reads the environment on every call to forward
      Lambda's trace id; the gateway runs as a server (Kubernetes), never inside Lambda.
    """
    service = client.meta.service_model.service_id.hyphenize()
    events = client.meta.events
    removed = {
        "idle_retry_check": _unregister(
            events, f"needs-retry.{service}", unique_id=f"retry-config-{service}"
        ),
        "recursion_header": _unregister(events, "before-call", add_recursion_detection_header),
    }
    for shortcut in (name for name, done in removed.items() if not done):
        _not_applied(shortcut, "botocore holds no such handler to unregister")
    return frozenset(name for name, done in removed.items() if done)


def _unregister(
    events: Any, event_name: str, handler: Any = None, unique_id: str | None = None
) -> bool:
    """Unregister a handler; whether one was removed (botocore's `unregister` never says)."""
    before = len(_handlers(events, event_name))
    events.unregister(event_name, handler, unique_id=unique_id)
    return len(_handlers(events, event_name)) < before


def _handlers(events: Any, event_name: str) -> list[Any]:
    """The handlers `events` holds for `event_name`, read from botocore's emitter ([] if unseen)."""
    alias = getattr(events, "_alias_event_name", None)
    trie = getattr(getattr(events, "_emitter", events), "_handlers", None)
    search = getattr(trie, "prefix_search", None)
    if search is None:
        return []
    return list(search(alias(event_name) if alias is not None else event_name))


STATIC_ENDPOINT_PARAMETERS = frozenset({"Region", "UseDualStack", "UseFIPS", "Endpoint"})
"""Endpoint ruleset parameters fixed for a client's life (no account id, no call argument)."""


def memoize_endpoint(client: Any) -> frozenset[str]:
    """Resolve the endpoint once per operation instead of on every call.

    botocore runs the service's endpoint ruleset on every call, building its parameters and
    emitting an event on the way. When every parameter the ruleset reads is fixed for the
    client's life (region, FIPS, dual-stack, the endpoint override), no operation has
    context parameters and nothing listens to that event, the answer can only be the same.
    """
    resolver: Any = getattr(client, "_ruleset_resolver", None)
    construct = getattr(resolver, "construct_endpoint", None)
    parameters = getattr(resolver, "_param_definitions", None)
    if construct is None or not isinstance(parameters, dict):
        return _not_applied("endpoint", "botocore has no endpoint ruleset resolver here")
    if set(parameters) - STATIC_ENDPOINT_PARAMETERS:
        return _not_applied("endpoint", "the endpoint ruleset reads more than fixed settings")
    service = client.meta.service_model.service_id.hyphenize()
    if _handlers(client.meta.events, f"before-endpoint-resolution.{service}"):
        return _not_applied("endpoint", "a handler listens to endpoint resolution")
    resolved: dict[str, Any] = {}

    async def construct_endpoint(operation_model: Any, call_args: Any, request_context: Any) -> Any:
        if operation_model.context_parameters or operation_model.static_context_parameters:
            return await construct(
                operation_model=operation_model,
                call_args=call_args,
                request_context=request_context,
            )
        endpoint = resolved.get(operation_model.name)
        if endpoint is None:
            endpoint = resolved[operation_model.name] = await construct(
                operation_model=operation_model,
                call_args=call_args,
                request_context=request_context,
            )
        # Fresh dicts each call: botocore hands them on into the request and its context.
        return endpoint._replace(
            headers=dict(endpoint.headers), properties=dict(endpoint.properties)
        )

    resolver.construct_endpoint = construct_endpoint
    return frozenset({"endpoint"})


def memoize_user_agent(client: Any) -> frozenset[str]:
    """Build the client's User-Agent once per feature set instead of twice per call.

    botocore rebuilds the string on every call (sanitizing some fifty components) because
    features used during a call are named in it; the string is a function of those
    features alone for one client, so it is cached by them.
    """
    creator: Any = getattr(client, "_user_agent_creator", None)
    build = getattr(creator, "to_string", None)
    if creator is None or build is None:  # another botocore: keep its behaviour
        return _not_applied("user_agent", "botocore has no user agent creator here")
    built: dict[frozenset[str], str] = {}

    def to_string() -> str:
        context = get_context()
        features = frozenset(context.features) if context is not None else frozenset()
        text = built.get(features)
        if text is None:
            if len(built) >= USER_AGENT_VARIANTS:
                built.clear()
            text = built[features] = build()
        return text

    creator.to_string = to_string
    return frozenset({"user_agent"})


def use_fast_sigv4(client: Any) -> frozenset[str]:
    """Sign with `FastSigV4Auth` wherever botocore chose plain SigV4 for this client.

    botocore still makes every choice (signer, region, signing name, credentials and their
    refresh); only an instance of exactly `SigV4Auth` is swapped for the subclass.
    """
    signer: Any = getattr(client, "_request_signer", None)
    original = getattr(signer, "get_auth_instance", None)
    if signer is None or original is None:
        return _not_applied("sigv4", "botocore has no request signer here")

    async def get_auth_instance(*args: Any, **kwargs: Any) -> Any:
        auth = await original(*args, **kwargs)
        if type(auth) is SigV4Auth:
            auth = FastSigV4Auth.from_auth(auth)
        return auth

    signer.get_auth_instance = get_auth_instance
    return frozenset({"sigv4"})


class _SignedHeaders(dict[str, list[str]]):
    """The headers to sign by lower-case name: what botocore keeps in an `HTTPHeaders`."""

    def get_all(self, name: str) -> list[str]:
        return self[name]


def _host(url: str) -> str:
    """botocore's `host` for `url`, worked out once per scheme and authority."""
    return _host_of_origin("/".join(url.split("/", 3)[:3]))  # scheme:, '', authority


@functools.lru_cache(maxsize=SIGNING_KEYS)
def _host_of_origin(origin: str) -> str:
    host: str = _host_from_url(origin)
    return host


@functools.lru_cache(maxsize=SIGNING_KEYS)
def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """SigV4's signing key for a day, region and service (derived once per day)."""
    key = f"AWS4{secret}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class FastSigV4Auth(SigV4Auth):  # type: ignore[misc]  # botocore ships no types
    """SigV4 exactly as botocore computes it, minus its two slow generic steps."""

    @classmethod
    def from_auth(cls, auth: SigV4Auth) -> FastSigV4Auth:
        """The same signer (credentials, region, service), with the faster steps."""
        fast = cls.__new__(cls)
        fast.__dict__.update(vars(auth))
        return fast

    def headers_to_sign(self, request: AWSRequest) -> Any:
        """The headers to sign, lower-cased, `host` derived from the URL when absent."""
        headers = _SignedHeaders()
        for name, value in request.headers.items():
            lname = name.lower()
            if lname not in _UNSIGNED_HEADERS:
                headers.setdefault(lname, []).append(value)
        if "host" not in headers:
            headers["host"] = [_host(request.url)]
        return headers

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        """HMAC of `string_to_sign` under the day's signing key, derived once per day."""
        day = request.context["timestamp"][0:8]
        key = _signing_key(self.credentials.secret_key, day, self._region_name, self._service_name)
        return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
