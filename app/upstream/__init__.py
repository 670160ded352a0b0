"""The only package that knows aioboto3 and botocore.

`client` holds the long-lived client and the policy around each call (retries, deadline,
breaker, error mapping); `tuning` cuts botocore's per-call costs without changing what
goes on the wire.
"""

from __future__ import annotations

from app.upstream.client import AWS_ERRORS, RETRYABLE, Upstream, map_exception
from app.upstream.tuning import parse_timestamp

__all__ = ["AWS_ERRORS", "RETRYABLE", "Upstream", "map_exception", "parse_timestamp"]
