"""redis-py's clients as the gateway builds them, against real servers: a fresh Cluster
client's first commands, sent together, all succeed once its slots are found once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from app.shared.clients import connect, first_use
from harness.redis_topologies import RedisCluster

BURST = 200
TOGETHER = 32
LIMIT = 0.5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    started = RedisCluster(3, log_dir=tmp_path_factory.mktemp("cluster")).start()
    yield started
    started.cleanup()


async def _burst(url: str) -> Counter[str]:
    settings = Settings(redis_url=url, redis_timeout_seconds=LIMIT)
    assert settings.redis_target is not None
    client = connect(settings.redis_target, settings, max_connections=128, listening=False)
    ready = first_use(client)
    assert ready is not None
    together = asyncio.Semaphore(TOGETHER)
    outcomes: Counter[str] = Counter()

    async def one(number: int) -> None:
        async with together:
            try:
                async with asyncio.timeout(LIMIT):  # as the guard runs every operation
                    await ready()
                    await client.set(f"first-use:{number}", b"x" * 700)
                    await client.get(f"first-use:{number}")
                outcomes["ok"] += 1
            except Exception as exc:  # counted, to show which
                outcomes[type(exc).__name__] += 1

    try:
        await asyncio.gather(*(one(number) for number in range(BURST)))
    finally:
        await client.aclose()
    return outcomes


def test_a_fresh_cluster_clients_first_commands_together_all_succeed(
    cluster: RedisCluster,
) -> None:
    # Without `first_use`, redis-py 8.1's asyncio cluster client let concurrent first
    # commands race to discover the slots: a third to two thirds of them failed.
    assert asyncio.run(_burst(cluster.url)) == Counter(ok=BURST)


def test_only_a_cluster_client_has_a_first_use() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:9/0")
    assert settings.redis_target is not None
    client = connect(settings.redis_target, settings, max_connections=1, listening=False)

    assert first_use(client) is None


@pytest.mark.parametrize(
    "url", ["redis://:in-the-url@cache:6379/0", "rediss://app:in-the-url@cache:6380/1"]
)
def test_the_password_file_wins_over_a_password_in_the_url(url: str, tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("from-the-file\n")
    settings = Settings(redis_url=url, redis_password_file=password)
    assert settings.redis_target is not None

    client = connect(settings.redis_target, settings, max_connections=1, listening=False)

    given = client.connection_pool.connection_kwargs
    assert given["password"] == "from-the-file"
    assert given["host"] == "cache"
    assert given.get("username") == ("app" if "app" in url else None)
