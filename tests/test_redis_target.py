"""What `GATEWAY_REDIS_URL` names, read without echoing it: each topology's URL forms."""

from __future__ import annotations

import pytest

from app.redis_target import RedisTarget, parse_redis_url

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(
    "url",
    ["redis://cache:6379/0", "rediss://:pw@cache:6380/2", "unix:///run/redis.sock"],
)
def test_a_single_server_url_is_left_to_redis_py(url: str) -> None:
    target = parse_redis_url(url)

    assert (target.topology, target.url) == ("standalone", url)
    assert target.tls == url.startswith("rediss://")


def test_a_cluster_url_names_its_seed_nodes() -> None:
    target = parse_redis_url("rediss-cluster://app:p%40ss@a.example:6379,b.example,[::1]:7000")

    assert target == RedisTarget(
        "cluster",
        True,
        "rediss-cluster://app:p%40ss@a.example:6379,b.example,[::1]:7000",
        nodes=(("a.example", 6379), ("b.example", 6379), ("::1", 7000)),
        username="app",
        password="p@ss",
    )


def test_a_sentinel_url_names_the_sentinels_and_the_service() -> None:
    target = parse_redis_url("redis-sentinel://secret@s1:26379,s2/mymaster/3")

    assert (target.topology, target.tls) == ("sentinel", False)
    assert target.nodes == (("s1", 26379), ("s2", 26379))
    assert (target.service, target.db, target.password, target.username) == (
        "mymaster",
        3,
        "secret",
        None,
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://user:hunter2@cache:6379", "must be a redis://"),
        ("redis+sentinel://user:hunter2@s1/mymaster", "must be a redis://"),
        ("redis-sentinel://user:hunter2@s1:26379", "names the primary's service"),
        ("redis-cluster://user:hunter2@a:port", "port is not a number"),
        ("redis-cluster://user:hunter2@a:6379/1", "has no path"),
        ("redis-cluster://user:hunter2@a:6379?ssl=1", "no query parameters"),
        ("redis-cluster://user:hunter2@a:70000", "out of range"),
        ("redis-cluster://user:hunter2@", "every node needs a host"),
    ],
)
def test_a_url_it_does_not_serve_is_refused_without_echoing_it(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as refused:
        parse_redis_url(url)

    assert "hunter2" not in str(refused.value)


def test_the_description_names_the_topology_not_the_hosts() -> None:
    described = parse_redis_url("rediss-cluster://a.internal:6379,b.internal:6379").description

    assert described == "Redis Cluster (2 seed nodes) over TLS"
    assert "internal" not in described
