"""What every handler gets besides the request: the under storage, the settings, and the parts built for them.

``Stack`` is what the composition root (``proxy.stack``) builds from the settings; the front reads it here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cache.blocks.metadata import CachedStore
from cache.blocks.reader import BlockReader
from cache.blocks.store import BlockStore
from cache.cluster.registry import Registry
from cache.cluster.routing import Cluster
from cache.storage.base import UnderStore
from cache.storage.namespace import Namespace
from conf.settings import Settings
from proxy.policy import OPEN, Policy

OWNER_ID = "s3cache"


@dataclass
class Stack:
    store: UnderStore
    namespace: Namespace | None = None
    blocks: BlockStore | None = None
    reader: BlockReader | None = None
    cached: CachedStore | None = None  # the block cache in front of the origin, by origin names (peers use it)
    registry: Registry | None = None
    cluster: Cluster | None = None
    starters: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    store: UnderStore
    settings: Settings
    namespace: Namespace | None = None  # None: one directory, no mounts, no rules
    stack: Stack | None = None  # the cache and cluster parts, for the data-path decision and peers
    policy: Policy = OPEN  # who may do what (proxy.policy): the mounts' rules and the policy file's

    @property
    def region(self) -> str:
        return self.settings.server.region
