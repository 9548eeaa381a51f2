"""Read-through policy: a byte range -> blocks -> hits from disk, misses filled once from the origin.

A miss starts one fill per block (single-flight: every concurrent reader of that block waits on the
same fill). The fill streams the block-aligned range from the origin into one buffer of the block's size,
handing bytes to waiting readers as they arrive (in pieces of up to 256 KiB: fewer, larger sends), then
writes that buffer (no copy) to the block store. A sequential
reader starts fills of the next blocks ahead of need (read-ahead). Memory is bounded by the number of
fills in flight times the block size; no whole object is ever held.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from cache.blocks.store import BlockCorrupt, BlockStore
from cache.bounded import Bounded
from cache.cluster.peers import Peers, PeerUnavailable
from cache.cluster.placement import placement_id
from cache.cluster.routing import Cluster
from cache.s3.errors import S3Error
from cache.s3.model import ObjectMeta

log = logging.getLogger("s3cache.reader")

Fetch = Callable[[str, str, str, int, int], AsyncIterator[bytes]]  # bucket, key, etag, start, end
_SEQUENTIAL_TRACKED = 4096
_FILL_PIECE_BYTES = 256 << 10  # a reader of a block being filled takes it in pieces this big (or what is left)
# A peer is hinted to warm a block once in this long: every reader of a hot object steps through the same window,
# and one hint per reader per block (64 readers x 16 blocks ahead) is a storm that starves the peer it warms.
_HINT_AGAIN_S = 10.0
_HANDED_BYTES = 8 << 20  # small objects' bytes kept between a cold open and the read that asked for them


@dataclass
class Served:
    """What served the blocks one request read: counted where the request reads each block (a fill runs in a task of
    its own, so it is counted by its reader, not by the fill). The front sets a fresh one per request (proxy/app.py)
    and logs it; a read outside a request (a peer's, a prefetch) finds none and counts nothing."""

    local: int = 0
    peer: int = 0
    origin: int = 0
    adopted: set[str] = field(default_factory=set)  # blocks this request's own origin response fills (adopt)

    @property
    def by(self) -> str:
        """local, peer, origin, mixed (more than one of them), or - (no block read)."""
        sources = [name for name in ("local", "peer", "origin") if getattr(self, name)]
        return sources[0] if len(sources) == 1 else "mixed" if sources else "-"

    @property
    def cache(self) -> str:
        """hit (no block from the origin), miss (one or more), or - (no block read)."""
        return "miss" if self.origin else "hit" if self.local or self.peer else "-"


served: contextvars.ContextVar[Served | None] = contextvars.ContextVar("s3cache_served", default=None)


def block_id(bucket: str, key: str, etag: str, index: int, block_size: int) -> str:
    """Identity of a block of one object version: a changed object never reads old blocks."""
    raw = f"{bucket}\0{key}\0{etag}\0{block_size}\0{index}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()


class Fill:
    """One block being fetched: its buffer, how much of it has arrived, and whoever waits for more."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buffer = bytearray()  # allocated once the fetch starts (so max_fills bounds fill memory), never regrown
        self.filled = 0
        self.done = False
        self.error: BaseException | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # (length awaited, woken when it is there)
        self.task: asyncio.Task[None] | None = None

    async def wait_for(self, length: int) -> None:
        if self.filled < length and not self.done:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((length, waiter))
            await waiter
        if self.error is not None:
            raise self.error

    def arrived(self) -> None:
        """Wake the readers whose bytes are there (all of them once done): a chunk costs no lock, and a reader
        waiting for a larger piece is not woken for every chunk on the way."""
        if not self._waiters:
            return
        waiting = []
        for length, waiter in self._waiters:
            if self.filled >= length or self.done:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                waiting.append((length, waiter))
        self._waiters = waiting


class BlockReader:
    def __init__(
        self, blocks: BlockStore, block_size: int, fetch: Fetch, readahead_blocks: int = 2, max_fills: int = 16,
        readahead_max_blocks: int = 16, peer_copy_after_reads: int = 0,
        cluster: Cluster | None = None, peers: Peers | None = None,
    ) -> None:
        self.blocks = blocks
        self.cluster = cluster
        self.peers = peers
        self._background: set[asyncio.Task[None]] = set()
        self.peer_reads = 0
        self.block_size = block_size
        self.fetch = fetch
        self.readahead_blocks = readahead_blocks
        self.readahead_max_blocks = max(readahead_blocks, readahead_max_blocks)
        self.peer_copy_after_reads = peer_copy_after_reads
        self._peer_block_reads: Bounded[str, int] = Bounded(_SEQUENTIAL_TRACKED)  # block id -> reads from peers
        self._fills: dict[str, Fill] = {}
        self._hinted: Bounded[str, float] = Bounded(_SEQUENTIAL_TRACKED)  # block id -> when its owner was hinted
        # block id -> a small object's bytes its owner sent with a cold open: read once, by the read that asked
        self._handed: Bounded[str, bytes] = Bounded(_SEQUENTIAL_TRACKED, weigh=len, max_weight=_HANDED_BYTES)
        self._fill_slots = asyncio.Semaphore(max_fills)
        # where a sequential reader left off, and the read-ahead window it has earned
        self._next_offset: Bounded[tuple[str, str, str], tuple[int, int]] = Bounded(_SEQUENTIAL_TRACKED)
        self.origin_fetches = 0
        self.served_bytes: Counter[str] = Counter()  # bytes of client reads by where they came from: local/peer/origin

    def _served(self, source: str, nbytes: int) -> None:
        """A client's read of one block is done: count it on its request and by bytes (a peer's read has no
        request, and is counted by the worker whose client asked)."""
        if (record := served.get()) is not None:
            setattr(record, source, getattr(record, source) + 1)
            self.served_bytes[source] += nbytes

    @property
    def waiting_fills(self) -> int:
        """Fills queued for one of the max_fills slots (not yet fetching): what admission control compares with
        cache.max_waiting_fills. The semaphore's own queue, so a fill counts exactly while it waits."""
        return len(self._fill_slots._waiters or ())

    def _span(self, meta: ObjectMeta, index: int) -> tuple[int, int]:
        start = index * self.block_size
        return start, min(start + self.block_size, meta.size)

    # ---- fills ---------------------------------------------------------------------------------

    def _fill(
        self, bucket: str, meta: ObjectMeta, index: int, source: AsyncIterator[bytes] | None = None,
        from_origin: bool = True,
    ) -> Fill:
        bid = block_id(bucket, meta.key, meta.etag, index, self.block_size)
        fill = self._fills.get(bid)
        if fill is None:
            start, end = self._span(meta, index)
            fill = self._fills[bid] = Fill(end - start)
            fill.task = asyncio.create_task(self._run_fill(bid, fill, bucket, meta, index, source, from_origin))
        return fill

    def adopt(self, bucket: str, meta: ObjectMeta, index: int, source: AsyncIterator[bytes]) -> None:
        """Fill block index from bytes already on their way (a cold read's one origin request, which brought the
        metadata too), instead of asking the origin for them again."""
        bid = block_id(bucket, meta.key, meta.etag, index, self.block_size)
        if bid in self.blocks or bid in self._fills or index * self.block_size >= meta.size:
            self._background_close(source)
            return
        if (record := served.get()) is not None:  # read from the store once filled, it still came from the origin
            record.adopted.add(bid)
        self._fill(bucket, meta, index, source)

    def _background_close(self, source: AsyncIterator[bytes]) -> None:
        closer = getattr(source, "aclose", None)
        if closer is not None:
            task = asyncio.create_task(closer())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _run_fill(
        self, bid: str, fill: Fill, bucket: str, meta: ObjectMeta, index: int, source: AsyncIterator[bytes] | None,
        from_origin: bool = True,
    ) -> None:
        start, end = self._span(meta, index)
        try:
            async with self._fill_slots:
                fill.buffer = bytearray(fill.size)  # arriving bytes are copied in place
                self.origin_fetches += from_origin
                chunks = source if source is not None else self.fetch(bucket, meta.key, meta.etag, start, end)
                async for chunk in chunks:
                    filled = fill.filled + len(chunk)
                    if filled > end - start:
                        raise S3Error("InternalError", f"The origin returned more than the {end - start} bytes "
                                      "of a block")
                    fill.buffer[fill.filled:filled] = chunk
                    fill.filled = filled
                    fill.arrived()
            if fill.filled != end - start:
                raise S3Error("InternalError", f"The origin returned {fill.filled} bytes for a "
                              f"{end - start}-byte block")
        except S3Error as exc:  # handed to every waiting reader
            fill.error = exc
        except asyncio.CancelledError:
            fill.error = S3Error("ServiceUnavailable", "The worker is shutting down")
            raise
        except Exception as exc:  # whatever broke the fetch, every reader must hear of it
            log.exception("fill of block %s failed", bid)
            fill.error = S3Error("InternalError", f"Fetching from the origin failed: {type(exc).__name__}")
        finally:
            fill.done = True
            fill.arrived()
        if fill.error is None:
            try:
                await self.blocks.write(bid, fill.buffer)  # complete: nobody writes to it any more
            finally:
                self._fills.pop(bid, None)
        else:
            self._fills.pop(bid, None)

    def _prefetch(self, bucket: str, meta: ObjectMeta, first: int, last: int) -> None:
        now = time.monotonic()
        for index in range(first, last + 1):
            bid = block_id(bucket, meta.key, meta.etag, index, self.block_size)
            if bid in self.blocks or bid in self._fills:
                continue
            if self.cluster is None:
                self._fill(bucket, meta, index)
            elif (hinted := self._hinted.get(bid)) is None or now - hinted >= _HINT_AGAIN_S:
                # only the block's owner may fetch it from the origin: ask it to warm up instead, once
                self._hinted.put(bid, now)
                task = asyncio.create_task(self._prefetch_routed(bucket, meta, index, bid))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _prefetch_routed(self, bucket: str, meta: ObjectMeta, index: int, bid: str) -> None:
        assert self.cluster is not None and self.peers is not None
        route = await self.cluster.route(bid, placement_id(bucket, meta.key, index))
        if not route:
            if bid not in self.blocks:
                self._fill(bucket, meta, index)
            return
        try:
            async for _ in self.peers.read_block(self.cluster.url_of(route[0]), bucket, meta, index, 0, 0):
                pass
        except (PeerUnavailable, S3Error, KeyError):
            pass  # a prefetch is a hint: the read itself will route around a dead peer

    async def cold_meta(self, bucket: str, key: str, index: int, whole: bool) -> ObjectMeta | None:
        """In a cluster, a cold read's one origin request is made by the owner of the block it starts in: ask it to
        open the object (it fetches that block, and answers the metadata that came with it, and a small object's
        bytes, kept for the read that asked). None: this worker is the one to ask the origin (it owns the block, or
        no peer could be asked)."""
        if self.cluster is None or self.peers is None:
            return None
        for target in await self.cluster.route("", placement_id(bucket, key, index)):
            try:
                meta, data = await self.peers.open_meta(self.cluster.url_of(target), bucket, key, index, whole)
                if data is not None and meta.size <= self.block_size:
                    self._handed.put(block_id(bucket, key, meta.etag, 0, self.block_size), data)
                return meta
            except (PeerUnavailable, KeyError) as exc:
                log.warning("peer %s skipped for a cold open of %s/%s: %s", target, bucket, key, exc)
                self.cluster.suspect(target)
        return None

    def warm(self, bucket: str, meta: ObjectMeta, index: int) -> None:
        """A peer's prefetch hint: start filling the block here unless it is cached or coming."""
        bid = block_id(bucket, meta.key, meta.etag, index, self.block_size)
        if bid not in self.blocks:
            self._fill(bucket, meta, index)

    # ---- reads ---------------------------------------------------------------------------------

    async def read_here(self, bucket: str, meta: ObjectMeta, size: int) -> bytes:
        """The first size bytes of a small object (one block), from here (cache or origin): sent to a peer with the
        metadata of a cold open."""
        return b"".join([piece async for piece in self.local_block(bucket, meta, 0, 0, size, size)])

    async def local_block(
        self, bucket: str, meta: ObjectMeta, index: int, lo: int, hi: int, chunk_bytes: int
    ) -> AsyncIterator[bytes]:
        """A peer's request: serve from here (cache or origin), never forwarding it again."""
        async for piece in self._block(bucket, meta, index, lo, hi, chunk_bytes, routed=False):
            yield piece

    async def stream(self, bucket: str, meta: ObjectMeta, start: int, end: int, chunk_bytes: int) -> AsyncIterator[bytes]:
        """Bytes [start, end) of the object version meta describes."""
        if end <= start:
            return
        first, last = start // self.block_size, (end - 1) // self.block_size
        sequential, window = self._is_sequential(bucket, meta, start, end)
        horizon = (meta.size - 1) // self.block_size
        for index in range(first, last + 1):
            ahead = min(horizon if sequential else last, index + window)
            if ahead > index:
                self._prefetch(bucket, meta, index + 1, ahead)
            block_start, block_end = self._span(meta, index)
            lo, hi = max(start, block_start) - block_start, min(end, block_end) - block_start
            async for piece in self._block(bucket, meta, index, lo, hi, chunk_bytes):
                yield piece
            # A reader that keeps up earns a wider window (doubling, as TCP's slow start), so enough blocks are
            # in flight to fill a remote origin whose every connection is slow; random readers never get one.
            window = min(self.readahead_max_blocks, window * 2)
            if sequential:
                self._next_offset.put((bucket, meta.key, meta.etag), (end, window))

    async def _block(
        self, bucket: str, meta: ObjectMeta, index: int, lo: int, hi: int, chunk_bytes: int, routed: bool = True
    ) -> AsyncIterator[bytes]:
        """Bytes [lo, hi) of block index: from the local store, else (routed) from the worker that holds or
        owns it, else filled here from the origin. Peers ask with routed=False: served where it lands."""
        bid = block_id(bucket, meta.key, meta.etag, index, self.block_size)
        if bid in self.blocks:
            try:
                wanted = hi - lo
                for offset in range(lo, hi, chunk_bytes):
                    yield await self.blocks.read(bid, offset, min(hi, offset + chunk_bytes))
                    lo = min(hi, offset + chunk_bytes)
                self.blocks.hits += 1
                record = served.get()
                self._served("origin" if record is not None and bid in record.adopted else "local", wanted)
                return
            except (KeyError, BlockCorrupt):
                pass  # evicted or corrupt meanwhile: fetch what is still owed
        if routed and (handed := self._handed.pop(bid)) is not None:  # came with the cold open, from its owner
            if (record := served.get()) is not None:
                record.peer += 1
            yield handed[lo:hi]
            return
        copying = False  # a local copy of a peer's block is being made: read from it below, served by the peer
        if routed and self.cluster is not None and self.peers is not None and bid not in self._fills:
            route = await self.cluster.route(bid, placement_id(bucket, meta.key, index))  # none: fill it here
            if route and self._copy_from_peer(bid):
                copying = True
                self._fill(bucket, meta, index, self._peer_then_origin(route[0], bucket, meta, index), from_origin=False)
                route = []  # read from the copy being made, below
            for target in route:
                try:
                    began = lo
                    async for piece in self.peers.read_block(self.cluster.url_of(target), bucket, meta, index, lo, hi):
                        lo += len(piece)
                        yield piece
                    if lo >= hi:
                        self.peer_reads += 1
                        self._served("peer", hi - began)
                        return
                    raise PeerUnavailable(f"{target} sent a short block")
                except (PeerUnavailable, KeyError) as exc:
                    log.warning("peer %s skipped for block %s: %s", target, bid[:12], exc)
                    self.cluster.suspect(target)
        if routed and bid in self.blocks:  # filled here while the route was looked up: not from the origin again
            async for piece in self._block(bucket, meta, index, lo, hi, chunk_bytes, routed=False):
                yield piece
            return
        self.blocks.misses += 1
        self._served("peer" if copying else "origin", hi - lo)
        fill = self._fill(bucket, meta, index)
        position = lo
        while position < hi:
            await fill.wait_for(min(hi, position + _FILL_PIECE_BYTES))
            available = min(hi, fill.filled, position + chunk_bytes)
            if available <= position:
                raise S3Error("InternalError", "A block fill ended early")
            with memoryview(fill.buffer) as view:
                piece = bytes(view[position:available])
            yield piece
            position = available

    def _copy_from_peer(self, bid: str) -> bool:
        """Whether this read of a block held elsewhere should keep a local copy: it has come from peers
        peer_copy_after_reads times already (0: never)."""
        if self.peer_copy_after_reads <= 0:
            return False
        reads = (self._peer_block_reads.get(bid) or 0) + 1
        self._peer_block_reads.put(bid, reads)
        return reads > self.peer_copy_after_reads

    async def _peer_then_origin(self, target: str, bucket: str, meta: ObjectMeta, index: int) -> AsyncIterator[bytes]:
        """A whole block from a peer, for a local copy; whatever the peer does not send comes from the origin."""
        assert self.cluster is not None and self.peers is not None
        start, end = self._span(meta, index)
        got = 0
        try:
            async for piece in self.peers.read_block(self.cluster.url_of(target), bucket, meta, index, 0, end - start):
                got += len(piece)
                yield piece
            self.peer_reads += 1
        except (PeerUnavailable, KeyError) as exc:
            log.warning("peer %s broke off a copy of block %d of %s: the rest from the origin: %s", target, index,
                        meta.key, exc)
            self.cluster.suspect(target)
        if start + got < end:
            async for piece in self.fetch(bucket, meta.key, meta.etag, start + got, end):
                yield piece

    def _is_sequential(self, bucket: str, meta: ObjectMeta, start: int, end: int) -> tuple[bool, int]:
        """Whether this read starts where the previous read of the same object version ended (or reads it
        whole), and the read-ahead window to start with: a continuing reader keeps the one it earned."""
        ident = (bucket, meta.key, meta.etag)
        previous = self._next_offset.pop(ident)
        sequential = (previous is not None and previous[0] == start) or (start == 0 and end == meta.size)
        window = previous[1] if sequential and previous is not None else self.readahead_blocks
        self._next_offset.put(ident, (end, window))
        return sequential, window
