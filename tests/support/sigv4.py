"""Requests signed by botocore's stock SigV4 signer, as the emulator expects them."""

from __future__ import annotations

from collections.abc import Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from harness.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

__all__ = ["ACCESS_KEY_ID", "REGION", "SECRET_ACCESS_KEY", "SIGNING_NAME", "signed_headers"]

SIGNING_NAME = "chime"
"""What botocore's model gives as chime-sdk-voice's signing name."""


def signed_headers(
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    *,
    access_key_id: str = ACCESS_KEY_ID,
    secret_access_key: str = SECRET_ACCESS_KEY,
    service: str = SIGNING_NAME,
) -> dict[str, str]:
    """`headers` plus the X-Amz-Date and Authorization botocore's SigV4Auth adds for `url`."""
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=b"")
    credentials = Credentials(access_key_id, secret_access_key)
    SigV4Auth(credentials, service, REGION).add_auth(request)
    return dict(request.headers.items())
