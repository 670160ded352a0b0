"""Settings: contract names and defaults, and a bad value stops the process with one line."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import Settings
from tests.support.servers import ROOT, Emulator, aws_env, free_port, start_gateway


def test_defaults_are_the_contracts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)

    settings = Settings()

    assert settings.cache_ttl_seconds == 30
    assert settings.cache_max_entries == 10_000
    assert settings.negative_cache_ttl_seconds == 5
    assert settings.stale_if_error_seconds == 300
    assert settings.upstream_timeout_seconds == 5
    assert settings.upstream_max_attempts == 3
    assert settings.tokens == frozenset()
    assert settings.log_level == "INFO"
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert settings.graphql_introspection is False
    assert settings.graphiql is False
    assert settings.botocore_tuning is True
    assert settings.redis_url is None
    assert settings.fleet is False
    assert settings.redis_key_prefix == "psgw:"
    assert settings.redis_timeout_seconds == 0.1
    assert settings.upstream_rate_limit == 0
    assert settings.upstream_rate_reserve == 0.2
    assert settings.fleet_max_replicas == 1
    assert settings.redis_ca_file is None
    assert settings.stale_while_revalidate_seconds == 0
    assert settings.encryption_keys == ()


def _run_with(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = aws_env("http://127.0.0.1:9")
    full.update({"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(free_port())})
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_CACHE_TTL_SECONDS", "soon"),
        ("GATEWAY_CACHE_MAX_ENTRIES", "0"),
        ("GATEWAY_NEGATIVE_CACHE_TTL_SECONDS", "-1"),
        ("GATEWAY_UPSTREAM_MAX_ATTEMPTS", "0"),
        ("GATEWAY_LOG_LEVEL", "LOUD"),
        ("GATEWAY_PORT", "70000"),
        ("GATEWAY_AUTH_TOKENS_FILE", "/nonexistent/tokens"),
        ("GATEWAY_GRAPHIQL", "perhaps"),
        ("GATEWAY_BOTOCORE_TUNING", "partly"),
        ("GATEWAY_REDIS_URL", "http://cache:6379"),
        ("GATEWAY_REDIS_URL", "redis+sentinel://cache:26379/psgw"),
        ("GATEWAY_REDIS_URL", "redis-sentinel://cache:26379"),
        ("GATEWAY_REDIS_URL", "redis-cluster://cache:port"),
        ("GATEWAY_REDIS_CA_FILE", "/nonexistent/ca.pem"),
        ("GATEWAY_FLEET_MAX_REPLICAS", "0"),
        ("GATEWAY_UPSTREAM_RATE_RESERVE", "1"),
        ("GATEWAY_REDIS_TIMEOUT_SECONDS", "0"),
        ("GATEWAY_REDIS_PASSWORD_FILE", "/nonexistent/password"),
        ("GATEWAY_CACHE_ENCRYPTION_KEY_FILE", "/nonexistent/keys"),
        ("GATEWAY_UPSTREAM_RATE_LIMIT", "-1"),
        ("GATEWAY_STALE_WHILE_REVALIDATE_SECONDS", "-5"),
    ],
)
def test_bad_value_stops_the_process_with_one_line_naming_it(variable: str, value: str) -> None:
    result = _run_with({variable: value})

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_region_may_come_from_aws_default_region(emulator: Emulator, tmp_path: Path) -> None:
    settings = {"AWS_REGION": "", "AWS_DEFAULT_REGION": "eu-west-1", "GATEWAY_LOG_LEVEL": "DEBUG"}
    gateway = start_gateway(emulator.url, tmp_path / "stdout.log", settings)
    try:
        regions = [r["region"] for r in gateway.log_records() if "region" in r]
        assert regions == ["eu-west-1"]
        assert gateway.get_session("vc", "missing").status_code == 404
    finally:
        gateway.stop()


def test_aws_region_wins_over_aws_default_region(emulator: Emulator, tmp_path: Path) -> None:
    settings = {
        "AWS_REGION": "ap-south-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "GATEWAY_LOG_LEVEL": "DEBUG",
    }
    gateway = start_gateway(emulator.url, tmp_path / "stdout.log", settings)
    try:
        assert [r["region"] for r in gateway.log_records() if "region" in r] == ["ap-south-1"]
    finally:
        gateway.stop()


def test_no_region_at_all_stops_the_process_saying_so() -> None:
    result = _run_with({"AWS_REGION": "", "AWS_DEFAULT_REGION": ""})

    assert result.returncode != 0
    assert "AWS_REGION" in result.stdout + result.stderr


def test_a_reserve_leaving_the_shared_window_no_call_stops_the_process() -> None:
    result = _run_with(
        {
            "GATEWAY_REDIS_URL": "redis://127.0.0.1:9/0",
            "GATEWAY_UPSTREAM_RATE_LIMIT": "1",
            "GATEWAY_UPSTREAM_RATE_RESERVE": "0.2",
        }
    )

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "GATEWAY_UPSTREAM_RATE_RESERVE" in lines[0]


def test_a_redis_url_is_never_echoed() -> None:
    result = _run_with({"GATEWAY_REDIS_URL": "http://user:hunter2@cache:6379"})

    assert result.returncode == 2
    assert "GATEWAY_REDIS_URL" in result.stderr
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "holds no key"),
        ("bm90IGEga2V5\n", "line 1 is not a base64 256-bit key"),
        (f"# rotation\n{base64.b64encode(b'k' * 32).decode()}\nnot base64!\n", "line 3 is"),
    ],
)
def test_a_bad_key_file_stops_the_process_naming_the_line(
    tmp_path: Path, content: str, problem: str
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(content, encoding="utf-8")

    result = _run_with({"GATEWAY_CACHE_ENCRYPTION_KEY_FILE": str(keys)})

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "GATEWAY_CACHE_ENCRYPTION_KEY_FILE" in lines[0]
    assert problem in lines[0]
    assert "bm90IGEga2V5" not in lines[0]  # a key's text is never echoed


def test_keys_and_password_are_read_from_their_files(tmp_path: Path) -> None:
    first, second = b"a" * 32, b"b" * 32
    keys, password = tmp_path / "keys", tmp_path / "password"
    keys.write_text(f"{base64.b64encode(first).decode()}\n\n{base64.b64encode(second).decode()}\n")
    password.write_text("s3cret\n")

    settings = Settings(
        redis_url="redis://cache:6379/0",
        cache_encryption_key_file=keys,
        redis_password_file=password,
    )

    assert settings.fleet is True
    assert settings.encryption_keys == (first, second)
    assert settings.redis_password == "s3cret"
    assert "cache:6379" not in repr(settings)
