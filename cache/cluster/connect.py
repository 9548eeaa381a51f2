"""The cluster's Redis client, built from ``cluster.redis_url``: the one place it is made.

Three kinds of Redis, told apart by the URL's scheme::

    redis://[[user]:password@]host[:port][/db]          one Redis endpoint (redis-py's from_url): a single
    rediss://...   unix:///path/redis.sock?db=N          node, or one that follows failovers itself (HAProxy,
                                                         a managed primary endpoint); rediss:// is TLS
    redis+sentinel://[[user:]password@]host[:port][,host[:port]...]/service_name[/db][?sentinel_password=P]
                                                         the master the Sentinels at host:port (default port
                                                         26379) name service_name: redis-py's
                                                         redis.asyncio.sentinel.Sentinel(...).master_for(...)
    redis+cluster://[[user:]password@]host[:port][,host[:port]...]
                                                         Redis Cluster, found from these seed nodes (default
                                                         port 6379): redis-py's redis.asyncio.cluster.RedisCluster

In the two multi-host forms the password (``password@``, ``:password@`` or ``user:password@``, URL-encoded)
authenticates to the Redis nodes that hold the data; Sentinels that require a password of their own are given it
with ``?sentinel_password=``. Redis Cluster has one database (0): no ``/db``.

Every client is configured alike: 1 s to connect, 2 s per reply, idle connections checked every 5 s, and one
immediate retry on a fresh connection (after a restart or a failover every pooled connection is dead and would
otherwise fail once each, flapping the worker "down" several times after it has rejoined).

What the registry and the shared metadata send works on all three (cache/cluster/registry.py and shared.py list
the keys): one-key commands, MGET and the Lua script on keys that share a hash tag (``{bucket/key}``: one slot),
pipelines that redis-py's cluster client splits by slot, PUBLISH and SUBSCRIBE on the channel (both go to the
node that owns the channel's slot, so PUBLISH counts every subscriber), BLPOP on one list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

Client: TypeAlias = "aioredis.Redis | RedisCluster"

# What a failing Redis raises: redis-py's errors (its cluster client raises some that are not RedisErrors: no
# reachable seed, a slot no node covers) and the socket's own.
ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)

SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://")
_SENTINEL_PORT = 26379
_REDIS_PORT = 6379


def _options() -> dict[str, Any]:
    return {"socket_connect_timeout": 1.0, "socket_timeout": 2.0, "health_check_interval": 5,
            "retry": Retry(NoBackoff(), 1)}


@dataclass(frozen=True)
class RedisTarget:
    """A parsed ``cluster.redis_url``."""

    kind: Literal["redis", "sentinel", "cluster"]
    url: str
    hosts: tuple[tuple[str, int], ...] = ()  # sentinel: the Sentinels; cluster: the seed nodes
    service: str = ""  # sentinel: the master's name
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None

    def describe(self) -> str:
        """The URL with any password masked: what logs and the status page show."""
        return redact(self.url)


def redact(url: str) -> str:
    """url with its password (and any ``*password`` option) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unreadable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        netloc = (f"{userinfo.split(':', 1)[0]}:***@" if ":" in userinfo else "***@") + hosts
    query = "&".join(f"{k}=***" if k.endswith("password") else f"{k}={quote(v)}"
                     for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _host_port(text: str, default_port: int, url: str) -> tuple[str, int]:
    if text.startswith("["):  # [v6 address]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"{redact(url)}: bad address {text!r}")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError(f"{redact(url)}: an empty host in {text!r}")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ValueError(f"{redact(url)}: bad port in {text!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"{redact(url)}: port {port} out of range")
    return host, port


def parse(url: str) -> RedisTarget:
    """Read a ``cluster.redis_url``; ValueError, saying what is wrong, for one that is not one of the forms above."""
    scheme = url.split("://", 1)[0].lower() + "://" if "://" in url else ""
    if scheme not in SCHEMES:
        raise ValueError(f"{redact(url)!r}: expected one of {', '.join(SCHEMES)}")
    if scheme in ("redis://", "rediss://", "unix://"):
        return RedisTarget("redis", url)
    rest = url[len(scheme):]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        if ":" in userinfo:
            user, _, secret = userinfo.partition(":")
            username, password = unquote(user) or None, unquote(secret)
        else:
            password = unquote(userinfo)
        password = password or None
    kind: Literal["sentinel", "cluster"] = "sentinel" if scheme == "redis+sentinel://" else "cluster"
    default_port = _SENTINEL_PORT if kind == "sentinel" else _REDIS_PORT
    if not netloc:
        raise ValueError(f"{redact(url)}: no host")
    hosts = tuple(_host_port(h.strip(), default_port, url) for h in netloc.split(","))
    options = dict(parse_qsl(query, keep_blank_values=True))
    allowed = {"sentinel_password"} if kind == "sentinel" else set()
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"{redact(url)}: unknown option {unknown[0]!r}"
                         + (" (only sentinel_password)" if allowed else " (none are taken)"))
    segments = [s for s in path.split("/") if s] if path else []
    if kind == "cluster":
        if segments not in ([], ["0"]):
            raise ValueError(f"{redact(url)}: Redis Cluster has one database: no /db (or /0)")
        return RedisTarget("cluster", url, hosts, username=username, password=password)
    if not segments or len(segments) > 2:
        raise ValueError(f"{redact(url)}: expected redis+sentinel://host:port[,host:port...]/service_name[/db]")
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise ValueError(f"{redact(url)}: the database {segments[1]!r} is not a number")
        db = int(segments[1])
    return RedisTarget("sentinel", url, hosts, unquote(segments[0]), db, username, password,
                       options.get("sentinel_password") or None)


def connect(target: RedisTarget | str) -> Client:
    """A client of the Redis the URL names (no connection is made until its first command)."""
    if isinstance(target, str):
        target = parse(target)
    if target.kind == "redis":
        return aioredis.from_url(target.url, **_options())
    if target.kind == "cluster":
        return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
                            username=target.username, password=target.password, **_options())
    options = _options()
    sentinel_options = {k: options[k] for k in ("socket_connect_timeout", "socket_timeout")}
    if target.sentinel_password:
        sentinel_options["password"] = target.sentinel_password
    sentinel = Sentinel(list(target.hosts), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    client: aioredis.Redis = sentinel.master_for(target.service, redis_class=aioredis.Redis, db=target.db,
                                                 username=target.username, password=target.password, **options)
    return client


def masters(client: Client) -> str | None:
    """Which server(s) this client writes to now, when it can tell: the master Sentinel named (host:port) or the
    Redis Cluster's primaries. A change means a failover: what the old master had not yet copied to its replicas
    may be gone. None for a single endpoint (it cannot tell) or before the first connection."""
    if isinstance(client, RedisCluster):
        names = sorted(node.name for node in client.get_primaries())
        return ",".join(names) or None
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool) and pool.master_address is not None:
        host, port = pool.master_address
        return f"{host}:{port}"
    return None


def is_sentinel(client: Client) -> bool:
    return not isinstance(client, RedisCluster) and isinstance(client.connection_pool, SentinelConnectionPool)


async def pubsub(client: Client) -> PubSub:
    """A PubSub of this client. Redis Cluster's subscribes on the node owning the channel's slot, which it can
    only look up once it knows the cluster: a client that has not yet reached it does now (or raises)."""
    if isinstance(client, RedisCluster):
        await client.initialize()
    return client.pubsub()


async def close(client: Client) -> None:
    """Close the client's connections, and for Sentinel the connections to the Sentinels too."""
    pool = None if isinstance(client, RedisCluster) else client.connection_pool
    await client.aclose()
    if isinstance(pool, SentinelConnectionPool):
        manager = pool.sentinel_manager
        if isinstance(manager, Sentinel):
            await manager.aclose()
