"""Phone masking, and an audit that no number, token or AWS secret leaks anywhere."""

from __future__ import annotations

import re

import pytest

from app.domain.masking import mask_phone
from tests.conftest import NAME_QUERY, GatewayFactory
from tests.support.servers import Emulator

PHONE = re.compile(r"\+?1?206555\d{4}")


@pytest.mark.parametrize(
    ("number", "masked"),
    [("+12065550100", "+*******0100"), ("12065550100", "*******0100"), ("+123", "+***"), ("", "")],
)
def test_mask_keeps_the_last_four_digits(number: str, masked: str) -> None:
    assert mask_phone(number) == masked


def test_all_masks_the_rest_door_too(
    gateway_factory: GatewayFactory, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(mask_phone_numbers="all")

    session = gateway.get_session(*seeded).json()["ProxySession"]

    assert session["Participants"][0] == {
        "PhoneNumber": "+*******0100",
        "ProxyPhoneNumber": "+*******0199",
    }


def test_default_leaves_the_rest_door_unmasked(
    gateway_factory: GatewayFactory, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory()

    session = gateway.get_session(*seeded).json()["ProxySession"]

    assert session["Participants"][0]["PhoneNumber"] == "+12065550100"


def test_no_number_token_or_secret_leaks_into_logs_metrics_or_errors(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    token = "audit-token-5f1c9e2a"
    gateway = gateway_factory(auth_tokens=token, log_level="DEBUG", mask_phone_numbers="all")
    auth = {"Authorization": f"Bearer {token}"}
    variables = {"vc": seeded[0], "ps": seeded[1]}
    bodies = [
        gateway.get_session(*seeded, headers=auth).text,
        gateway.graphql(NAME_QUERY, variables, headers=auth).text,
        gateway.get_session(*seeded).text,  # 401
        gateway.get_session(seeded[0], "+12065550100", headers=auth).text,  # 404 for a number id
    ]
    emulator.fault(*seeded, raw_status=500, raw_body='{"Message": "+12065550101 exploded"}')
    bodies.append(gateway.get_session(*seeded, headers={**auth, "Cache-Control": "no-cache"}).text)
    metrics = gateway.client.get("/metrics").text
    logs = "\n".join(gateway.settled_log_lines())

    for where, text in [
        ("bodies", "\n".join(bodies[:3] + bodies[4:])),
        ("metrics", metrics),
        ("logs", logs),
    ]:
        assert not PHONE.search(text), where
        assert token not in text, where
        assert "testing" not in text, where  # the AWS secret access key
        assert "Traceback" not in text or where == "logs", where
