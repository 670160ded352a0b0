"""`make run`'s and `make run-fleet`'s banners: every curl line pasteable as printed, with a
token the gateway accepts when authentication is on (read where the gateway reads it,
never printed)."""

from __future__ import annotations

import re
import subprocess

import pytest

from scripts.run_fleet import banner as fleet_banner
from scripts.run_local import banner

pytestmark = pytest.mark.fast

URLS = ["http://127.0.0.1:8080", "http://127.0.0.1:8081", "http://127.0.0.1:8082"]


def _curl_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("curl")]


@pytest.mark.parametrize(
    "make_banner",
    [
        lambda environ: banner(URLS[0], "http://e", environ),
        lambda environ: fleet_banner(URLS, "http://e", "one redis-server", environ=environ),
    ],
    ids=["run", "run-fleet"],
)
def test_with_static_tokens_every_call_sends_the_first_one(make_banner: object) -> None:
    environ = {"GATEWAY_AUTH_TOKENS": "secret-one-0123456789,secret-two-0123456789"}
    text = make_banner(environ)  # type: ignore[operator]

    calls = [line for line in _curl_lines(text) if "/_emulator/" not in line]
    assert calls
    assert all('-H "Authorization: Bearer ${GATEWAY_AUTH_TOKENS%%,*}"' in c for c in calls)
    assert "secret-one" not in text
    # What the shell makes of it: the first token.
    expanded = subprocess.run(
        ["bash", "-c", 'echo "${GATEWAY_AUTH_TOKENS%%,*}"'],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert expanded == "secret-one-0123456789"


def test_without_authentication_the_calls_send_no_header() -> None:
    text = banner(URLS[0], "http://e", {})

    assert not any("Authorization" in line for line in _curl_lines(text))
    assert "…" not in text


def test_a_token_file_is_read_by_the_shell_and_a_jwks_asks_for_a_jwt() -> None:
    from_file = banner(URLS[0], "http://e", {"GATEWAY_AUTH_TOKENS_FILE": "/run/secrets/tokens"})
    from_issuer = banner(URLS[0], "http://e", {"GATEWAY_JWT_JWKS_URL": "https://idp/jwks"})

    assert re.search(r'Bearer \$\(head -n 1 /run/secrets/tokens\)"', from_file)
    assert '-H "Authorization: Bearer $TOKEN"' in from_issuer
    assert "set to a JWT your issuer signed" in from_issuer
