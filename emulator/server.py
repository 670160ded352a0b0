"""The aiohttp application: GetProxySession on the AWS paths, the admin API under /_emulator."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

from emulator import wire
from emulator.faults import Fault, FaultSpecError, Key, parse_fault
from emulator.signature import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, Verifier
from emulator.store import Store, StoreFullError, load_template, render

ADMIN_PREFIX = "_emulator"
WILDCARD = "*"
MALFORMED_BODY = b"<html>garbage"
NOT_FOUND = "NotFoundException"
CHUNK_BYTES = 64 * 1024
# l_onoff=1, l_linger=0: close() then sends RST instead of FIN.
_LINGER_RESET = struct.pack("ii", 1, 0)


class AdminRequestError(Exception):
    """An admin request the emulator cannot act on; answered with 400."""


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(payload).encode(), content_type="application/json"
    )


def _no_content() -> web.Response:
    return web.Response(status=204)


def _bad_request(message: str) -> web.Response:
    return _json({"error": message}, status=400)


def _abort(request: web.Request) -> web.Response:
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()
    # Never reaches the client: aiohttp drops it because the connection is gone.
    return web.Response(status=204)


def _url(request: web.Request) -> str:
    """The request's URL with its path exactly as sent, which is what the client signed."""
    return f"{request.scheme}://{request.host}{request.raw_path}"


def _key(raw_vc: str, raw_ps: str) -> Key:
    return unquote(raw_vc), unquote(raw_ps)


def _any_key(raw_vc: str, raw_ps: str) -> Key | None:
    """Decode a key from raw path segments, where a bare ``*/*`` (None) means every key."""
    if raw_vc == WILDCARD and raw_ps == WILDCARD:
        return None
    if WILDCARD in (raw_vc, raw_ps):
        raise AdminRequestError("use * for both segments, or percent-encode a literal * as %2A")
    return _key(raw_vc, raw_ps)


async def _read_json(request: web.Request) -> object:
    try:
        return json.loads(await request.read())
    except ValueError as exc:
        raise AdminRequestError(f"body is not JSON: {exc}") from exc


class Emulator:
    """Request handlers bound to one store, the operation's model and the signature check."""

    def __init__(
        self,
        store: Store,
        operation: wire.Operation,
        verifier: Verifier,
        default_session: dict[str, object] | None = None,
    ) -> None:
        self.store = store
        self.operation = operation
        self.verifier = verifier
        self.default_session = default_session
        self.not_found_status = operation.error_statuses[NOT_FOUND]

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Route on the raw path so that percent-encoded slashes stay inside an id."""
        parts = request.raw_path.split("?", 1)[0].split("/")[1:]
        if parts and parts[0] == ADMIN_PREFIX:
            try:
                return await self.admin(request, parts[1:])
            except (AdminRequestError, FaultSpecError, StoreFullError) as exc:
                return _bad_request(str(exc))
        body = await request.read()
        rejection = self.verifier.verify(request.method, _url(request), request.headers, body)
        if rejection is not None:
            self.store.reject(rejection.code)
            return wire.denied(rejection.code, rejection.message)
        ids = self.operation.match(request.method, parts)
        if ids is None:
            return wire.unknown_operation()
        key = _key(*ids)
        self.store.count(key)
        fault = self.store.faults.take(key)
        if fault is None:
            return self.answer(key)
        self.store.inflight += 1
        self.store.max_inflight = max(self.store.max_inflight, self.store.inflight)
        try:
            return await self.inject(request, key, fault)
        finally:
            self.store.inflight -= 1

    def answer(self, key: Key) -> web.Response:
        """Answer GetProxySession from the stored sessions."""
        body = self.session_body(key)
        if body is not None:
            return wire.ok(body)
        return self.not_found(key)

    def session_body(self, key: Key) -> bytes | None:
        """The stored (or default) session's reply body, None when there is none."""
        body = self.store.sessions.get(key)
        if body is not None:
            return body
        if self.default_session is not None:
            ids = {"VoiceConnectorId": key[0], "ProxySessionId": key[1]}
            return render({**self.default_session, **ids})
        return None

    def not_found(self, key: Key) -> web.Response:
        """Answer NotFoundException for `key`."""
        message = f"Proxy session {key[1]} not found on Voice Connector {key[0]}."
        return wire.error(NOT_FOUND, self.not_found_status, message)

    async def inject(self, request: web.Request, key: Key, fault: Fault) -> web.StreamResponse:
        """Answer one request the way the fault says."""
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.reset:
            return _abort(request)
        if fault.raw_body is not None or fault.raw_status is not None:
            return wire.raw(fault.raw_status or 200, (fault.raw_body or "").encode())
        if fault.redirect is not None:
            return wire.redirect(fault.redirect_status, fault.redirect)
        if fault.foreign_ids or fault.pad_bytes or fault.chunked:
            return await self.odd_answer(request, key, fault)
        if fault.malformed:
            return wire.raw(200, MALFORMED_BODY)
        if fault.error is not None:
            status = fault.status or self.operation.error_statuses.get(
                fault.error, wire.UNMODELED_ERROR_STATUS
            )
            message = fault.message or f"{fault.error} injected by the emulator."
            return wire.error(fault.error, status, message)
        return self.answer(key)

    async def odd_answer(self, request: web.Request, key: Key, fault: Fault) -> web.StreamResponse:
        """The normal answer under other ids, padded or chunked, as the fault says."""
        body = self.session_body(key)
        if body is None:
            return self.not_found(key)
        if fault.foreign_ids:
            reply = json.loads(body)
            session = reply["ProxySession"]
            session["VoiceConnectorId"] = f"other-{key[0]}"
            session["ProxySessionId"] = f"other-{key[1]}"
            body = json.dumps(reply).encode()
        if fault.pad_bytes:
            body = body[:-1] + b" " * fault.pad_bytes + body[-1:]
        if not fault.chunked:
            return wire.ok(body)
        response = web.StreamResponse(
            headers={"Content-Type": wire.JSON, "x-amzn-RequestId": wire.request_id()}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), CHUNK_BYTES):
            await response.write(body[start : start + CHUNK_BYTES])
        await response.write_eof()
        return response

    async def admin(self, request: web.Request, parts: list[str]) -> web.Response:
        """Serve the admin API under /_emulator."""
        store = self.store
        match request.method, parts:
            case "GET", ["health"]:
                return _json({"status": "ok"})
            case "POST", ["reset"]:
                try:
                    store.reset()
                except (OSError, ValueError) as exc:
                    return _json({"error": f"cannot reload sessions: {exc}"}, status=500)
                return _no_content()
            case "GET", ["calls"]:
                keys = {f"{vc}/{ps}": count for (vc, ps), count in store.calls.items()}
                return _json(
                    {
                        "total": store.calls_total,
                        "max_inflight": store.max_inflight,
                        "keys": keys,
                        "rejected": store.rejected,
                        "times": list(store.call_times),
                    }
                )
            case "GET", ["calls", raw_vc, raw_ps]:
                key = _any_key(raw_vc, raw_ps)
                count = store.calls_total if key is None else store.calls.get(key, 0)
                return _json({"count": count})
            case "PUT", ["sessions", raw_vc, raw_ps]:
                session = await _read_json(request)
                if not isinstance(session, dict):
                    return _bad_request("a ProxySession must be a JSON object")
                store.put_session(_key(raw_vc, raw_ps), session)
                return _no_content()
            case "DELETE", ["sessions", raw_vc, raw_ps]:
                store.sessions.pop(_key(raw_vc, raw_ps), None)
                return _no_content()
            case "PUT", ["faults", raw_vc, raw_ps]:
                fault = parse_fault(await _read_json(request))
                store.faults.put(_any_key(raw_vc, raw_ps), fault)
                return _no_content()
            case "DELETE", ["faults", raw_vc, raw_ps]:
                store.faults.remove(_any_key(raw_vc, raw_ps))
                return _no_content()
        return _json({"error": f"no admin endpoint {request.method} {request.path}"}, status=404)


def create_app(
    data_path: Path | str,
    default_session: Path | None = None,
    *,
    access_key_id: str = TEST_ACCESS_KEY_ID,
    secret_access_key: str = TEST_SECRET_ACCESS_KEY,
) -> web.Application:
    """Build the emulator application serving the sessions in data_path.

    With default_session, unknown keys get that template session instead of NotFound.
    GetProxySession requests must be signed (SigV4) with the given key pair.
    """
    template = load_template(default_session) if default_session is not None else None
    operation = wire.load_operation()
    verifier = Verifier(access_key_id, secret_access_key, operation.signing_name)
    emulator = Emulator(Store(Path(data_path)), operation, verifier, template)
    app = web.Application()
    # Every character, line breaks included: an id may hold one (`.*` stops at a newline).
    app.router.add_route("*", r"/{path:[\s\S]*}", emulator.dispatch)
    return app
