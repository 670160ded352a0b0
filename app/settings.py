"""The gateway's settings: the only reader of the environment."""

from __future__ import annotations

import base64
import binascii
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.redis_target import RedisTarget, parse_redis_url

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
KEY_BYTES = 32


def read_keys(path: Path) -> tuple[bytes, ...]:
    """The base64 AES-256 keys in `path`, one a line (blank lines and `#` comments skipped).

    Raises ValueError naming the bad line, without echoing what it holds.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError("file does not exist or is not readable") from exc
    keys: list[bytes] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            key = base64.b64decode(text, validate=True)
        except binascii.Error:
            key = b""
        if len(key) != KEY_BYTES:
            raise ValueError(f"line {number} is not a base64 256-bit key")
        keys.append(key)
    if not keys:
        raise ValueError("holds no key")
    return tuple(keys)


class Settings(BaseSettings):
    """Every `GATEWAY_*` variable, with its safe default."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_ignore_empty=True,
        frozen=True,
        extra="ignore",
        populate_by_name=True,
    )

    cache_ttl_seconds: PositiveFloat = 30
    cache_max_entries: PositiveInt = 10_000
    negative_cache_ttl_seconds: PositiveFloat = 5
    closed_cache_ttl_seconds: PositiveFloat = 300
    stale_if_error_seconds: Annotated[float, Field(ge=0)] = 300
    upstream_timeout_seconds: PositiveFloat = 5
    upstream_connect_timeout_seconds: PositiveFloat = 2
    upstream_max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    upstream_max_pool_connections: Annotated[int, Field(ge=1, le=1024)] = 64
    auth_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    auth_tokens_file: Path | None = None
    log_level: LogLevel = "INFO"
    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    forwarded_allow_ips: str = ""
    shutdown_drain_seconds: Annotated[float, Field(ge=0)] = 5
    shutdown_grace_seconds: PositiveInt = 20
    graphql_introspection: bool = False
    graphiql: bool = False
    graphql_max_depth: Annotated[int, Field(ge=1, le=100)] = 6
    graphql_max_aliases: Annotated[int, Field(ge=1, le=1000)] = 20
    graphql_max_tokens: Annotated[int, Field(ge=10, le=100_000)] = 2000
    max_body_bytes: Annotated[int, Field(ge=256, le=16 * 1024 * 1024)] = 65536
    max_inflight: Annotated[int, Field(ge=1, le=100_000)] = 512
    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 16384
    keep_alive_seconds: Annotated[int, Field(ge=1, le=3600)] = 5
    body_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10
    upstream_max_concurrency: Annotated[int, Field(ge=1, le=1024)] = 32
    breaker_failure_threshold: Annotated[int, Field(ge=1, le=1000)] = 5
    breaker_reset_seconds: PositiveFloat = 10
    retry_budget_ratio: Annotated[float, Field(ge=0, le=10)] = 0.2
    retry_budget_window_seconds: PositiveFloat = 10
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    mask_phone_numbers: Literal["none", "graphql", "all"] = "none"
    graphql_max_fields: Annotated[int, Field(ge=1, le=100_000)] = 500
    revalidate_min_interval_seconds: Annotated[float, Field(ge=0, le=3600)] = 1
    cache_max_bytes: Annotated[int, Field(ge=65536)] = 67_108_864
    caller_upstream_rate: Annotated[float, Field(ge=0, le=100_000)] = 0
    botocore_tuning: bool = True
    graphql_tuning: bool = True
    http_tuning: bool = True
    upstream_max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 65536
    stale_while_revalidate_seconds: Annotated[float, Field(ge=0)] = 0
    upstream_rate_limit: Annotated[int, Field(ge=0, le=100_000)] = 0
    redis_url: SecretStr | None = None
    redis_password_file: Path | None = None
    redis_key_prefix: Annotated[str, Field(max_length=64)] = "psgw:"
    redis_timeout_seconds: PositiveFloat = 0.1
    redis_ca_file: Path | None = None
    fleet_max_replicas: Annotated[int, Field(ge=1, le=10_000)] = 1
    upstream_rate_reserve: Annotated[float, Field(ge=0, lt=1)] = 0.2
    cache_encryption_key_file: Path | None = None
    graphql_persisted_documents_file: Path | None = None
    graphql_persisted_only: bool = False

    aws_region: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )

    @field_validator("auth_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(token.strip() for token in value.split(",") if token.strip())
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value

    @field_validator("jwt_jwks_url")
    @classmethod
    def _jwks_over_http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _jwt_settings_together(self) -> Settings:
        jwt = (self.jwt_jwks_url, self.jwt_issuer, self.jwt_audience)
        if any(jwt) and not all(jwt):
            raise ValueError(
                "GATEWAY_JWT_JWKS_URL, GATEWAY_JWT_ISSUER and GATEWAY_JWT_AUDIENCE go together"
            )
        return self

    @model_validator(mode="after")
    def _persisted_only_needs_a_manifest(self) -> Settings:
        if self.graphql_persisted_only and self.graphql_persisted_documents_file is None:
            raise ValueError(
                "GATEWAY_GRAPHQL_PERSISTED_ONLY needs GATEWAY_GRAPHQL_PERSISTED_DOCUMENTS_FILE"
            )
        return self

    @model_validator(mode="after")
    def _shared_window_has_a_call(self) -> Settings:
        if self.redis_url is not None and self.upstream_rate_limit > 0:
            shared = self.upstream_rate_limit * (1 - self.upstream_rate_reserve)
            if shared + 1e-9 < 1:
                raise ValueError(
                    "GATEWAY_UPSTREAM_RATE_RESERVE leaves the replicas that reach the shared "
                    "layer less than one AWS call a second of GATEWAY_UPSTREAM_RATE_LIMIT: "
                    "lower the reserve or raise the limit"
                )
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_target(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_redis_url(value.get_secret_value())  # ValueError, never echoing the URL
        return value

    @field_validator("cache_encryption_key_file")
    @classmethod
    def _key_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_keys(value)  # raises ValueError, naming the line, never echoing a key
        return value

    @field_validator("auth_tokens_file", "redis_password_file", "redis_ca_file")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("file does not exist or is not readable")
        return value

    @property
    def fleet(self) -> bool:
        """Whether the shared layer (fleet mode) is on."""
        return self.redis_url is not None

    @cached_property
    def redis_target(self) -> RedisTarget | None:
        """Where the shared layer is (None: fleet mode is off)."""
        if self.redis_url is None:
            return None
        return parse_redis_url(self.redis_url.get_secret_value())

    @cached_property
    def encryption_keys(self) -> tuple[bytes, ...]:
        """The shared layer's AES-256 keys, the one that encrypts first (none: stored plain)."""
        if self.cache_encryption_key_file is None:
            return ()
        return read_keys(self.cache_encryption_key_file)

    @cached_property
    def redis_password(self) -> str | None:
        """The shared layer's password from its file, if one is set."""
        if self.redis_password_file is None:
            return None
        return self.redis_password_file.read_text(encoding="utf-8").strip() or None

    @cached_property
    def tokens(self) -> frozenset[str]:
        """All bearer tokens accepted, from the variable and the file together."""
        tokens = {token.get_secret_value() for token in self.auth_tokens}
        if self.auth_tokens_file is not None:
            lines = self.auth_tokens_file.read_text(encoding="utf-8").splitlines()
            tokens.update(line.strip() for line in lines if line.strip())
        return frozenset(tokens)
