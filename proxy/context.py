"""What every handler gets besides the request: the under storage and the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cache.storage.base import UnderStore
from cache.storage.namespace import Namespace
from conf.settings import Settings

if TYPE_CHECKING:
    from proxy.stack import Stack

OWNER_ID = "s3cache"


@dataclass(frozen=True)
class Context:
    store: UnderStore
    settings: Settings
    namespace: Namespace | None = None  # None: one directory, no mounts, no rules
    stack: Stack | None = None  # the cache and cluster parts, for the data-path decision and peers

    @property
    def region(self) -> str:
        return self.settings.server.region
