"""An OIDC provider's side for the JWT tests: signing keys, tokens and a JWKS server on loopback."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.servers import LOOPBACK

ISSUER = "https://idp.test.internal/realms/gateway"
AUDIENCE = "proxy-session-gateway"
SUBJECT = "subject-4b1d0c9e-claims-must-not-be-logged"
"""A claim value the gateway's log must never show."""


@dataclass(frozen=True)
class SigningKey:
    """A private key the tests sign with, and the public JWK a JWKS would publish for it."""

    kid: str
    algorithm: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @property
    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK with `kid`, `alg` and `use`."""
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    @property
    def public_pem(self) -> bytes:
        """The public key as PEM (what a key-confusion attack uses as an HMAC secret)."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: Mapping[str, Any], *, kid: str | None = None) -> str:
        """A compact JWT with these claims, signed by this key, `kid` in its header."""
        return jwt.encode(
            dict(claims), self.private, algorithm=self.algorithm, headers={"kid": kid or self.kid}
        )


def rsa_key(kid: str) -> SigningKey:
    """A fresh RSA 2048 key for RS256."""
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    """A fresh P-256 key for ES256."""
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims the gateway accepts (valid for five minutes), with some replaced (None drops one)."""
    now = int(time.time())
    out: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "iat": now,
        "exp": now + 300,
    }
    for name, value in overrides.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
    return f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}"


def unsigned(payload: Mapping[str, Any], kid: str) -> str:
    """An `alg: none` token: no signature at all."""
    return _segments({"alg": "none", "typ": "JWT", "kid": kid}, payload) + "."


def hmac_signed(payload: Mapping[str, Any], kid: str, secret: bytes) -> str:
    """An HS256 token with `secret` as the key, made by hand (PyJWT refuses a PEM secret)."""
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": kid}, payload)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def with_payload(token: str, payload: Mapping[str, Any]) -> str:
    """`token` with its payload swapped for another, the signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{_b64(orjson.dumps(dict(payload)))}.{signature}"


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    delay: float = 0.0
    send_length: bool = True


@dataclass
class JwksServer:
    """A JWKS endpoint per name (`/<name>/jwks.json`) whose keys tests publish and rotate."""

    port: int = 0
    _answers: dict[str, _Answer] = field(default_factory=dict)
    _requests: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._httpd = ThreadingHTTPServer((LOOPBACK, self.port), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        """The JWKS URL for `name`."""
        return f"http://{LOOPBACK}:{self.port}/{name}/jwks.json"

    def publish(self, name: str, *keys: SigningKey, delay: float = 0.0) -> None:
        """Serve exactly `keys` at `name` from now on, each answer `delay` seconds late."""
        body = orjson.dumps({"keys": [key.jwk for key in keys]})
        self.serve(name, body, delay=delay)

    def serve(
        self,
        name: str,
        body: bytes,
        *,
        status: int = 200,
        delay: float = 0.0,
        send_length: bool = True,
    ) -> None:
        """Answer `name` with these raw bytes (no Content-Length: the body ends with the stream)."""
        with self._lock:
            self._answers[name] = _Answer(status, body, delay, send_length)

    def requests(self, name: str) -> int:
        """How many times `name`'s JWKS was fetched."""
        with self._lock:
            return self._requests[name]

    def stop(self) -> None:
        """Stop serving and close the listener."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _answer(self, path: str) -> _Answer:
        name = path.strip("/").removesuffix("/jwks.json")
        with self._lock:
            self._requests[name] += 1
            return self._answers.get(name, _Answer(404, b"{}"))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = server._answer(self.path)
                time.sleep(answer.delay)
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                if answer.send_length:
                    self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                # A client that stops reading (a size cap) is expected.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep the test output quiet."""

        return Handler
