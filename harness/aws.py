"""The emulator's test credentials, and the environment that points a process at the emulator."""

from __future__ import annotations

import os

REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
"""The only access key id the harness's emulator accepts."""
SECRET_ACCESS_KEY = "testing"  # noqa: S105 - a key pair only the local emulator knows
"""Its secret, which the emulator checks every GetProxySession signature with."""
CREDENTIAL_OPTIONS = ("--access-key-id", ACCESS_KEY_ID, "--secret-access-key", SECRET_ACCESS_KEY)
"""The emulator's command line options for these credentials."""


def aws_env(endpoint: str) -> dict[str, str]:
    """This environment minus AWS_*, GATEWAY_* and OTEL_*, with the AWS variables aimed at
    `endpoint`.

    Output is unbuffered and the gateway's shutdown drain off, so a stop is prompt.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GATEWAY_", "OTEL_"))}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_CHIME_SDK_VOICE": endpoint,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
            "GATEWAY_SHUTDOWN_DRAIN_SECONDS": "0",
        }
    )
    return env
