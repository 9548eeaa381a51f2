"""Building the storage stack from settings: the one place under-storage clients are made.

    directory only (the embedded default)   -> DirectoryStore, nothing in between
    an origin and/or mounts                 -> Namespace(mounts, default store), where every origin mount (and
                                               the origin passed through) is CachedStore(S3Store, BlockReader)
                                               and every file:// mount a DirectoryStore
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from cache.blocks.metadata import CachedStore
from cache.blocks.reader import BlockReader
from cache.blocks.store import BlockStore
from cache.cluster.locks import RedisLocks
from cache.cluster.peers import Peers
from cache.cluster.registry import Registry
from cache.cluster.routing import Cluster
from cache.s3.errors import S3Error
from cache.storage.base import UnderStore
from cache.storage.directory.locks import FileLocks
from cache.storage.directory.store import DirectoryStore
from cache.storage.locks import LocalLocks
from cache.storage.namespace import Mount, Namespace
from cache.storage.origin.credentials import OriginCredentials, origin_credentials
from cache.storage.origin.signing import Signer
from cache.storage.origin.store import S3Store
from cache.storage.origin.transport import tls_context
from conf.settings import ConfigError, Settings
from proxy.context import Stack


def _origin(settings: Settings) -> tuple[S3Store, OriginCredentials] | None:
    o = settings.origin
    if not o.endpoint:
        return None
    ca_bundle = o.ca_bundle or os.environ.get("AWS_CA_BUNDLE") or None
    try:
        tls = tls_context(ca_bundle)  # loaded once, here, so a bad bundle is a configuration error
    except (OSError, ssl.SSLError) as exc:
        source = "origin.ca_bundle" if o.ca_bundle else "AWS_CA_BUNDLE (origin.ca_bundle unset)"
        raise ConfigError(f"{source}: cannot load CA certificates from {ca_bundle}: {exc}") from None
    secret_key = o.secret_access_key.get_secret_value() if o.secret_access_key is not None else None
    credentials = origin_credentials(o.access_key_id, secret_key, o.profile, o.credentials_refresh_before_s)
    store = S3Store(o.endpoint, o.region, Signer(credentials.current, o.region),
                    virtual_host=o.addressing_style == "virtual", connect_timeout_s=o.connect_timeout_s,
                    read_timeout_s=o.read_timeout_s, retries=o.retries, max_connections=o.max_connections,
                    http_client=o.http_client, tls=tls)
    return store, credentials


def _mount(settings: Settings, index: int, origin: UnderStore | None, cached: bool, fsync: bool) -> Mount:
    m = settings.mounts[index]
    uri = urlsplit(m.uri)
    if uri.scheme == "s3":
        if origin is None:
            raise ConfigError(f"mounts.{index}.uri: s3:// mounts need [origin] endpoint")
        prefix = uri.path.strip("/")
        return Mount(m.bucket, origin, uri.netloc, prefix + "/" if prefix else "", cached=cached)
    if uri.scheme == "file":
        directory = Path(uri.netloc + uri.path)
        directory.mkdir(parents=True, exist_ok=True)
        store = DirectoryStore(directory.parent, fsync=fsync, bucket_dirs={m.bucket: directory})
        return Mount(m.bucket, store, m.bucket, "", cached=False)
    raise ConfigError(f"mounts.{index}.uri: {m.uri!r} is neither s3://bucket[/prefix] nor file:///directory")


def _reads_through_cache(settings: Settings) -> bool:
    """Origin reads go through the block reader when this node caches, or when it is a capacity-0 gateway of a
    cluster: the gateway stores nothing but reads through the workers that hold or own each block."""
    return settings.cache.capacity_bytes > 0 or bool(settings.cluster.redis_url)


def listen_url(settings: Settings, tls: bool | None = None) -> str:
    """The URL of this worker's port on this host (a wildcard address shown as loopback): its HTTPS port when it
    serves TLS (or when tls says so)."""
    server = settings.server
    shown = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    if server.tls if tls is None else tls:
        return f"https://{shown}:{server.tls_port}"
    return f"http://{shown}:{server.port}"


def advertised_url(settings: Settings) -> str:
    return settings.cluster.advertise_url or listen_url(settings)


def _cluster(settings: Settings, blocks: BlockStore) -> tuple[Registry, Cluster, Peers]:
    c = settings.cluster
    assert c.redis_url is not None
    if not c.secret:
        raise ConfigError("cluster.secret: a cluster secret is required with cluster.redis_url "
                          "(S3CACHE_CLUSTER_SECRET or --cluster-secret-file)")
    if settings.server.processes > 1:
        raise ConfigError("server.processes: a cluster worker runs one process; start one worker per core")
    url = advertised_url(settings)
    worker_id = c.worker_id or url
    registering = settings.cache.capacity_bytes > 0  # capacity 0: a pure gateway, never a placement target
    try:  # redis://, redis+sentinel:// or redis+cluster:// (cache/cluster/connect.py reads the URL; no I/O yet)
        registry = Registry(c.redis_url, worker_id, url, c.heartbeat_ttl_s, c.namespace, stats=blocks.stats,
                            invalidation_timeout_s=c.invalidation_timeout_s)
    except ValueError as exc:
        raise ConfigError(f"cluster.redis_url: {exc}") from None
    peers = Peers(c.secret.get_secret_value(), c.peer_timeout_s, block_size=settings.cache.block_size_bytes,
                  signature_ttl_s=c.peer_request_ttl_s,
                  previous_secret=c.previous_secret.get_secret_value() if c.previous_secret is not None else None,
                  ca_file=str(c.peer_ca_file) if c.peer_ca_file is not None else None)
    return registry, Cluster(registry, worker_id, registering), peers


def build_stack(settings: Settings) -> Stack:
    directory = DirectoryStore(settings.storage.data_dir, fsync=settings.storage.fsync)
    signed_origin = _origin(settings)
    origin, credentials = signed_origin if signed_origin is not None else (None, None)
    if origin is None and not settings.mounts and not settings.cluster.redis_url:
        _hold_keys(settings, [directory], None)
        return Stack(directory)
    if settings.server.processes > 1 and settings.cache.capacity_bytes > 0:
        raise ConfigError("server.processes: a caching worker runs one process (its block index lives in it); "
                          "run one worker per core, each with its own --port and --cache-dir")
    c = settings.cache
    blocks = BlockStore(c.cache_dir, c.capacity_bytes, c.eviction)
    blocks.load()
    registry = cluster = peers = None
    if settings.cluster.redis_url:
        registry, cluster, peers = _cluster(settings, blocks)
    # Blocks are read by their origin names (bucket and key at the origin), so they are shared across workers and
    # sidecars whatever their mounts call the bucket; peers are asked for them by those names too.
    reader = BlockReader(blocks, c.block_size_bytes, origin.read_range if origin is not None else _no_origin,
                         c.readahead_blocks, c.max_fills, c.readahead_max_blocks, c.peer_copy_after_reads,
                         cluster=cluster, peers=peers)
    caching = origin is not None and _reads_through_cache(settings)
    cached = CachedStore(origin, reader, c.metadata_ttl_s, c.list_ttl_s, registry=registry) \
        if origin is not None and caching else None
    front: UnderStore | None = cached or origin
    mounts = [_mount(settings, i, front, caching, settings.storage.fsync) for i in range(len(settings.mounts))]
    namespace = Namespace(mounts, front or directory, default_cached=caching)
    stack = Stack(namespace, namespace, blocks, reader, cached, registry, cluster)
    _hold_keys(settings, [directory, origin, *(m.store for m in mounts)], registry)
    if registry is not None and cluster is not None and peers is not None:
        blocks.listener = lambda block, held: registry.held(block) if held else registry.dropped(block)
        if cached is not None:
            registry.on_invalidate = cached.forget
        registry.on_reconnect = _held_blocks(blocks)
        stack.starters.append(lambda: registry.start(cluster.registered, c.block_size_bytes))
        stack.closers += [registry.stop, peers.aclose]
    if origin is not None and credentials is not None:
        stack.starters.append(credentials.start)  # temporary credentials refreshed in the background
        stack.closers += [credentials.stop, origin.aclose]
    return stack


def _hold_keys(settings: Settings, stores: list[object], registry: Registry | None) -> None:
    """The key locks a conditional write holds, each waiting storage.write_lock_wait_s: a directory's across the
    processes serving it; an origin's across the cluster (Redis) when there is one, else in this worker."""
    wait = settings.storage.write_lock_wait_s
    for store in stores:
        if isinstance(store, DirectoryStore):
            store.locks = FileLocks(wait)
        elif isinstance(store, S3Store):
            store.locks = RedisLocks(registry.redis, settings.cluster.namespace, wait) if registry is not None \
                else LocalLocks(wait)


async def _no_origin(bucket: str, key: str, etag: str, start: int, end: int) -> AsyncIterator[bytes]:
    raise S3Error("InternalError", "No origin is configured to fill a block from")
    yield b""  # an async generator, like the origin's read_range


def _held_blocks(blocks: BlockStore) -> Callable[[], Awaitable[list[str]]]:
    async def held() -> list[str]:
        return blocks.ids()
    return held
