"""SigV4 verification of incoming requests by botocore's own signer, answered as AWS does."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict, MultiMapping

TEST_ACCESS_KEY_ID = "testing"
TEST_SECRET_ACCESS_KEY = "testing"
ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
PARAMETERS = ("Credential", "SignedHeaders", "Signature")
_TIMESTAMP = re.compile(r"\d{8}T\d{6}Z")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided."
    " Check your AWS Secret Access Key and signing method."
    " Consult the service documentation for details."
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why AWS refuses a request before the service sees it: error code and message."""

    code: str
    message: str


MISSING_AUTHENTICATION = Rejection(
    "MissingAuthenticationTokenException", "Missing Authentication Token"
)
UNRECOGNIZED_CLIENT = Rejection(
    "UnrecognizedClientException", "The security token included in the request is invalid."
)


def _incomplete(message: str) -> Rejection:
    return Rejection("IncompleteSignatureException", message)


def _invalid(message: str) -> Rejection:
    return Rejection("InvalidSignatureException", message)


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of a SigV4 ``Authorization`` header."""

    access_key_id: str
    day: str
    region: str
    service: str
    signed_headers: frozenset[str]
    signature: str


def parse_authorization(header: str) -> Authorization | Rejection:
    """Split a SigV4 ``Authorization`` header, or say why AWS calls it incomplete."""
    scheme, _, rest = header.partition(" ")
    parameters: dict[str, str] = {}
    if scheme == ALGORITHM:
        for item in rest.split(","):
            name, _, value = item.strip().partition("=")
            parameters[name] = value
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in PARAMETERS
        if not parameters.get(name)
    ]
    if missing:
        return _incomplete(" ".join([*missing, f"Authorization={header}"]))
    credential = parameters["Credential"]
    scope = credential.split("/")
    if len(scope) != 5 or not all(scope):
        return _incomplete(f"Credential should be scoped to a valid region, not '{credential}'. ")
    if scope[4] != TERMINATOR:
        return _incomplete(
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{scope[4]}'. "
        )
    return Authorization(
        access_key_id=scope[0],
        day=scope[1],
        region=scope[2],
        service=scope[3],
        signed_headers=frozenset(parameters["SignedHeaders"].split(";")),
        signature=parameters["Signature"],
    )


@dataclass(frozen=True, slots=True)
class Verifier:
    """Checks SigV4 signatures made with one key pair for one signing name."""

    access_key_id: str
    secret_access_key: str
    service: str

    def verify(
        self, method: str, url: str, headers: MultiMapping[str], body: bytes
    ) -> Rejection | None:
        """Return why AWS would refuse this request's signature, or None when it verifies.

        `url` is the request's URL as received: its path exactly as sent on the wire.
        """
        header = headers.get("Authorization")
        if header is None:
            return MISSING_AUTHENTICATION
        auth = parse_authorization(header)
        if isinstance(auth, Rejection):
            return auth
        if auth.access_key_id != self.access_key_id:
            return UNRECOGNIZED_CLIENT
        timestamp = headers.get("X-Amz-Date")
        if timestamp is None:
            return _incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date'"
                f" header. Authorization={header}"
            )
        if not _TIMESTAMP.fullmatch(timestamp):
            return _incomplete(f"Date must be in ISO-8601 'basic format'. Got '{timestamp}'.")
        if auth.day != timestamp[:8]:
            return _invalid(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date"
                f" from HTTP: '{auth.day}' != '{timestamp[:8]}', from '{timestamp}'."
            )
        if auth.service != self.service:
            return _invalid(f"Credential should be scoped to correct service: '{self.service}'. ")
        signed = CIMultiDict(
            (name, value) for name, value in headers.items() if name.lower() in auth.signed_headers
        )
        request = AWSRequest(method=method, url=url, headers=signed, data=body)
        request.context["timestamp"] = timestamp
        credentials = Credentials(self.access_key_id, self.secret_access_key)
        signer = SigV4Auth(credentials, self.service, auth.region)
        canonical = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical)
        expected: str = signer.signature(string_to_sign, request)
        # aiohttp keeps undecodable header bytes as surrogates.
        claimed = auth.signature.encode("utf-8", "surrogateescape")
        if hmac.compare_digest(expected.encode(), claimed):
            return None
        return _invalid(
            f"{_MISMATCH}\n\nThe Canonical String for this request should have been\n"
            f"'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
        )
