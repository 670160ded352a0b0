"""Fleet mode with traces on: the shared layer's operations for a traced request are CLIENT
spans of its trace; its background work (heartbeats, the notices' listener) makes none."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.otlp import Receiver
from harness.redis import RedisServer
from tests.observability.test_traces import AUTH, new_key, path, traced_env
from tests.support.servers import Emulator, start_gateway


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def test_shared_layer_operations_are_client_spans_of_the_request(
    emulator: Emulator, redis_server: RedisServer, receiver: Receiver, tmp_path: Path
) -> None:
    env = traced_env(
        receiver.url,
        GATEWAY_REDIS_URL=redis_server.url,
        GATEWAY_REDIS_KEY_PREFIX=f"traces-{secrets.token_hex(4)}:",
        GATEWAY_UPSTREAM_RATE_LIMIT="100",  # a heartbeat runs in the background
    )
    gateway = start_gateway(emulator.url, tmp_path / "stdout.log", env)
    try:
        key = new_key(emulator)
        trace_id = secrets.token_hex(16)
        headers = {**AUTH, "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}

        reply = gateway.client.get(path(key), headers=headers)

        assert reply.status_code == 200
        spans = receiver.wait_for(
            lambda spans: (
                {"redis get", "redis lease", "redis set", "redis quota"}
                <= {s.name for s in spans if s.trace_id == trace_id}
            )
        )
        ours = {s.span_id: s for s in spans if s.trace_id == trace_id}
        server = next(s for s in ours.values() if s.kind == "SERVER")
        aws = next(s for s in ours.values() if s.name == "ChimeSDKVoice/GetProxySession")
        for span in ours.values():
            if span.name.startswith("redis "):
                assert span.kind == "CLIENT"
                assert span.attributes["db.system.name"] == "redis"
                assert span.attributes["db.operation.name"] == span.name.removeprefix("redis ")
                assert span.parent_span_id in ours  # under the request, or under its call
        assert aws.parent_span_id == server.span_id
        time.sleep(0.5)  # heartbeats and the listener ran meanwhile: no trace of their own
        assert all(s.parent_span_id for s in receiver.spans if s.name.startswith("redis ")), (
            "a shared-layer span outside any request"
        )
    finally:
        gateway.stop()
