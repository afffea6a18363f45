"""``REDIS_URL``: the forms accepted, the clients made, one factory for every component."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis
from redis.sentinel import SentinelConnectionPool

from common.config import load_settings
from common.config_checks import ConfigError
from common.redis_client import REDIS_TIMEOUT, RedisUrlError, connect_redis, parse_redis_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://:secret@redis.example.test:6380/2",
        "rediss://user:secret@redis.example.test:6380/0?ssl_ca_certs=/etc/ssl/redis-ca.pem",
        "unix:///run/redis/redis.sock?db=1",
        "redis+sentinel://127.0.0.1:26379/mymaster",
        "redis+sentinel://:secret@s1.example.test:26379,s2.example.test:26379,[::1]:26379/mymaster/3",
        "redis+cluster://127.0.0.1:7000",
        "redis+cluster://app:secret@n1.example.test:7000,n2.example.test:7001",
    ],
)
def test_every_documented_form_is_accepted(url):
    assert load_settings({"REDIS_URL": url}, component="web_app").redis_url == url


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("http://localhost:6379", "the scheme is not one of"),
        ("redis+sentinel://127.0.0.1:26379", "needs /service_name"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/zero", "needs /service_name"),
        ("redis+sentinel://127.0.0.1/mymaster", "is not host:port"),
        ("redis+sentinel://127.0.0.1:26379/mymaster?ssl=true", "takes no query string"),
        ("redis+cluster://127.0.0.1:7000/0", "takes no /db"),
        ("redis+cluster://", "needs host:port"),
        ("redis+cluster://127.0.0.1:7000,127.0.0.1:99999", "is not host:port"),
        ("redis://127.0.0.1:port/0", "its port is not a number"),
    ],
)
def test_a_malformed_url_stops_with_one_clear_line(url, fragment):
    with pytest.raises(ConfigError) as caught:
        load_settings({"REDIS_URL": url}, component="web_app")
    message = str(caught.value)
    assert message.startswith("REDIS_URL") and fragment in message and "\n" not in message


def test_credentials_in_a_malformed_url_are_not_repeated():
    with pytest.raises(ConfigError) as caught:
        load_settings({"REDIS_URL": "redis+cluster://:s3cret-password@127.0.0.1:7000/0"}, component="web_app")
    assert "s3cret-password" not in str(caught.value) and "takes no /db" in str(caught.value)


def test_sentinel_and_cluster_urls_name_their_nodes_service_db_and_credentials():
    sentinel = parse_redis_url("redis+sentinel://app:p%40ss@s1.test:26379,[::1]:26380/mymaster/3")
    assert sentinel.nodes == (("s1.test", 26379), ("::1", 26380))
    assert (sentinel.service_name, sentinel.db) == ("mymaster", 3)
    assert (sentinel.username, sentinel.password) == ("app", "p@ss")
    cluster = parse_redis_url("redis+cluster://:secret@n1.test:7000,n2.test:7001")
    assert cluster.nodes == (("n1.test", 7000), ("n2.test", 7001)) and cluster.password == "secret"
    assert cluster.username is None and cluster.service_name is None
    assert parse_redis_url("rediss://h.test:6380/0") is None  # redis-py parses these itself
    with pytest.raises(RedisUrlError):
        parse_redis_url("redis+cluster://n1.test")


def test_a_sentinel_url_makes_a_master_client_with_the_servers_credentials_and_our_timeouts():
    """Every command goes to the master; the password is the Redis servers', never sent to the sentinels."""
    client = connect_redis("redis+sentinel://:secret@s1.test:26379,s2.test:26379/mymaster/2")
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.is_master and pool.service_name == "mymaster"
    kwargs = pool.connection_kwargs
    assert kwargs["password"] == "secret" and kwargs["db"] == 2
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == REDIS_TIMEOUT
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs.get("port") for s in sentinels] == [26379, 26379]
    for sentinel in sentinels:
        assert sentinel.connection_pool.connection_kwargs.get("password") is None
        assert sentinel.connection_pool.connection_kwargs["socket_timeout"] == REDIS_TIMEOUT


def test_a_rediss_url_keeps_redis_pys_tls_options():
    client = connect_redis("rediss://:secret@h.test:6380/1?ssl_ca_certs=/etc/ssl/redis-ca.pem")
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class is redis.SSLConnection
    assert kwargs["ssl_ca_certs"] == "/etc/ssl/redis-ca.pem" and kwargs["password"] == "secret"
    assert kwargs["socket_timeout"] == REDIS_TIMEOUT


#: Building a Redis client anywhere but in the factory would let one component ignore REDIS_URL's topology.
CLIENT_CONSTRUCTION = re.compile(
    r"\bRedis\.from_url\(|\bredis\.Redis\(|\bRedisCluster\(|\bSentinel\(|StrictRedis"
)


def test_every_component_gets_its_client_from_the_one_factory():
    packages = ["common", "dev_issuer", "resource_server", "service_app", "spa_app", "web_app", "native_sim"]
    offenders = [
        str(path.relative_to(ROOT))
        for package in packages
        for path in (ROOT / package).rglob("*.py")
        if path.name != "redis_client.py" and CLIENT_CONSTRUCTION.search(path.read_text())
    ]
    assert offenders == []
