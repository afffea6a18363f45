"""One Redis client for every component, made from ``REDIS_URL``.

Every app, the dev issuer and the tools get their client here, so that one
URL decides the topology for all of them (README "Deploying"):

* ``redis://``, ``rediss://`` (TLS) and ``unix://``: one Redis server,
  through redis-py's own URL parser, so its query options work as documented
  there (``?ssl_ca_certs=/path/ca.pem``, ``?ssl_cert_reqs=required``, ``?db=``).
* ``redis+sentinel://[user:password@]host:port[,host:port…]/service_name[/db]``:
  a master watched by Redis Sentinel, through redis-py's ``Sentinel``.  Every
  command goes to the master (``master_for``): sessions, locks and single-use
  markers are all writes or reads that must see the last write, which a
  replica (asynchronous replication) may not have yet.  The credentials are
  the Redis servers'; the sentinels are asked without any.
* ``redis+cluster://[user:password@]host:port[,host:port…]``: Redis Cluster,
  through redis-py's ``RedisCluster``.  A cluster has only database 0, so the
  URL takes no ``/db``.  Every multi-key operation of the suite keeps its keys
  in one hash slot with a ``{…}`` hash tag (see ``dev_issuer/storage.py``).

The same timeouts everywhere: a Redis call that takes longer than
:data:`REDIS_TIMEOUT` fails, and the request gets a 503 instead of a gunicorn
worker hanging on a dead Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.sentinel import Sentinel

__all__ = ["REDIS_TIMEOUT", "SCHEMES", "RedisUrlError", "RedisLocation", "connect_redis", "parse_redis_url"]

#: Seconds a Redis call may take before the request gives up with a 503.
#: Short, so that a gunicorn worker never hangs on a dead Redis.
REDIS_TIMEOUT = 2.0

SENTINEL = "redis+sentinel"
CLUSTER = "redis+cluster"

#: Every scheme ``REDIS_URL`` may use (the settings check accepts exactly these).
SCHEMES = ("redis", "rediss", "unix", SENTINEL, CLUSTER)


class RedisUrlError(ValueError):
    """``REDIS_URL`` is not one of the accepted forms; the message never repeats credentials."""


@dataclass(frozen=True)
class RedisLocation:
    """Where a ``redis+sentinel://`` or ``redis+cluster://`` URL points.

    :param nodes: the sentinels' (or the cluster's start-up nodes') ``(host, port)``.
    :param service_name: the master's name at the sentinels (``None`` for a cluster).
    """

    scheme: str
    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    service_name: str | None = None
    db: int = 0


def _nodes(hosts: str) -> tuple[tuple[str, int], ...]:
    """``host:port[,host:port…]`` (IPv6 hosts in brackets) as a tuple of pairs."""
    nodes = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RedisUrlError(f"{item.strip()!r} is not host:port")
        nodes.append((host, int(port)))
    return tuple(nodes)


def parse_redis_url(url: str) -> RedisLocation | None:
    """Check ``url``; for a Sentinel or Cluster URL, what it names.

    :return: ``None`` for ``redis://``, ``rediss://`` and ``unix://`` (redis-py
        parses those itself), else the :class:`RedisLocation`.
    :raises RedisUrlError: another scheme, or a Sentinel/Cluster URL that is
        malformed (no host, no port, a ``/db`` on a cluster, a query string).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise RedisUrlError("the scheme is not one of " + ", ".join(f"{s}://" for s in SCHEMES))
    if scheme not in (SENTINEL, CLUSTER):
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not 1-65535
        except ValueError:
            raise RedisUrlError("its port is not a number from 1 to 65535") from None
        return None
    if parts.query or parts.fragment:
        raise RedisUrlError(f"{scheme}:// takes no query string")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    if not hosts:
        raise RedisUrlError(f"{scheme}:// needs host:port[,host:port…]")
    nodes = _nodes(hosts)
    path = [unquote(p) for p in parts.path.split("/")[1:] if p]
    credentials = {"username": unquote(username) or None, "password": unquote(password) or None}
    if scheme == CLUSTER:
        if path:
            raise RedisUrlError("redis+cluster:// takes no /db: a cluster has only database 0")
        return RedisLocation(CLUSTER, nodes, **credentials)
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise RedisUrlError("redis+sentinel:// needs /service_name, optionally /db (a number)")
    db = int(path[1]) if len(path) == 2 else 0
    return RedisLocation(SENTINEL, nodes, service_name=path[0], db=db, **credentials)


class SuiteRedisCluster(RedisCluster):
    """redis-py's ``RedisCluster``, whose "no node answers" is a :class:`redis.ConnectionError`.

    redis-py reports a cluster it cannot reach at all with
    ``RedisClusterException``, which is not a ``redis.RedisError``; every
    component turns ``redis.RedisError`` into a 503 ("try again in a
    moment"), so without this a cluster outage would be a 500.  Only that
    case is translated: the same exception also reports a programming error
    (keys of one command in several hash slots), which must stay loud.
    """

    def execute_command(self, *args, **options):
        """Run one command; an unreachable cluster raises ``redis.ConnectionError``."""
        try:
            return super().execute_command(*args, **options)
        except RedisClusterException as error:
            if isinstance(error.__cause__, (redis.ConnectionError, redis.TimeoutError, OSError)):
                raise redis.ConnectionError(str(error)) from error
            raise


#: The options every connection gets, whatever the topology.
_TIMEOUTS = {"socket_timeout": REDIS_TIMEOUT, "socket_connect_timeout": REDIS_TIMEOUT}


def connect_redis(url: str) -> redis.Redis | RedisCluster:
    """The Redis client for ``url``, with socket and connect timeouts.

    redis-py reconnects by itself on the next call once the server is back,
    so an outage needs no restart of the app.  Behind Sentinel, a command
    that meets the demoted master (``READONLY``) or a closed connection
    asks the sentinels for the new master and is retried (redis-py's
    default retry), so a failover costs the requests of those seconds at
    most a 503.  A cluster client learns the slot map at once: it fails
    here, at start-up, when no start-up node answers (redis-py's
    "Redis Cluster cannot be connected"); later, a cluster that stops
    answering is a :class:`redis.ConnectionError` like any outage.

    :param url: ``Settings.redis_url``, one of :data:`SCHEMES`.
    :raises RedisUrlError: ``url`` is not an accepted Redis URL.
    """
    location = parse_redis_url(url)
    if location is None:
        return redis.Redis.from_url(url, **_TIMEOUTS, health_check_interval=30)
    credentials = {"username": location.username, "password": location.password}
    if location.scheme == CLUSTER:
        nodes = [ClusterNode(host, port) for host, port in location.nodes]
        return SuiteRedisCluster(startup_nodes=nodes, **credentials, **_TIMEOUTS, health_check_interval=30)
    # The sentinels are asked without credentials (they are the Redis
    # servers'), with the same timeouts.
    sentinel = Sentinel(list(location.nodes), sentinel_kwargs=dict(_TIMEOUTS), **_TIMEOUTS)
    return sentinel.master_for(
        location.service_name, db=location.db, **credentials, **_TIMEOUTS, health_check_interval=30
    )
