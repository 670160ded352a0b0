"""Raw sockets against a real gateway: what an HTTP client library would not send."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from tests.support.servers import Gateway


def connect(gateway: Gateway, timeout: float = 10) -> socket.socket:
    """A TCP connection to the gateway."""
    parts = urlsplit(gateway.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """How long until the server closed the connection (reading and dropping anything it
    sent), or None if it was still open after `seconds`."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """`count` responses with a Content-Length, read in turn (pipelined ones may arrive in
    one read: nothing after the first is dropped, as `read_response` would)."""
    responses = []
    with sock.makefile("rb") as stream:
        for _ in range(count):
            line = stream.readline()
            if not line:
                raise ConnectionError("closed before a response")
            status = int(line.split(b" ")[1])
            headers = {}
            while (header := stream.readline()) not in (b"\r\n", b""):
                name, _, value = header.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers.get("content-length", "0")))
            responses.append((status, headers, body))
    return responses


def read_until_closed(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection or `seconds` pass."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received
