"""The HTTP protocol a worker serves with: uvicorn's httptools protocol, bounded and with fewer sends.

Bounded where uvicorn is not (request heads, header and idle timeouts), and a small response's head and body
go out in one send(2) instead of two: on this machine a send costs more than the rest of a warm small GET
(``benchmarks/results/``: most of a 4 KiB GET's samples are in uvicorn's send).
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from conf.settings import Settings
from proxy.app import header_section_too_large
from proxy.errors import error_response


class CoalescingTransport:
    """A transport whose small writes made in one turn of the event loop leave as one write at its end.

    uvicorn writes a response's head and its body separately; for a small object that is two system calls where
    one does. Order is kept: a large write first sends what is held, then goes straight through. Every other
    call reaches the real transport (flow control stays with it)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._flush_scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) >= _COALESCED_BYTES or self._held_bytes + len(data) >= _COALESCED_BYTES:
            self.flush()
            self._transport.write(data)
            return
        self._held.append(bytes(data))  # a copy: the caller may reuse its buffer once write returns
        self._held_bytes += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        self._held_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


# Room for the request line beside the header section: a 1024-byte key percent-escaped, a presigned query with a
# session token, and each header's ": " and CRLF.
HEAD_SLACK_BYTES = 16 << 10
log = logging.getLogger("s3cache")
_COALESCED_BYTES = 64 << 10  # writes smaller than this wait for the end of the loop turn, to go out as one


@dataclass(frozen=True)
class ConnectionLimits:
    head_bytes: int  # a request's head (request line and headers) larger than this is refused unread
    header_timeout_s: float  # from a request's first byte to the end of its headers
    idle_s: float  # from the connection's start to its first request's first byte


class S3Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, bounded where uvicorn is not: httptools buffers a request's head however
    long it grows (and uvicorn offers no limit with it), and uvicorn's only timer runs after a response, so a
    client that connects and sends nothing, or one header byte a second, would hold its connection forever.
    Here a head past its bound is answered 400 RequestHeaderSectionTooLarge and the connection closed, a head not
    complete within header_timeout_s closes it, and so does a new connection silent for idle_s."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._head_bytes = 0
        self._awaiting_head = True
        self._deadline: TimerHandle | None = None

    def _arm(self, delay_s: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.debug("closing a connection from %s: no complete request head in time", self.client)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        self._arm(self.limits.idle_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_head and self.parser is not None and not self.transport.is_closing():
            self._head_bytes += len(data)  # counted once fed: body bytes after a complete head are not
            if self._head_bytes > self.limits.head_bytes:
                self._refuse_head()

    def _refuse_head(self) -> None:
        log.warning("refused a request head of more than %d bytes from %s", self.limits.head_bytes, self.client)
        response = error_response(header_section_too_large(), "/", "0", False)
        assert isinstance(response.body, bytes)
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/xml\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(response.body), response.body))
        self._disarm()
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_head = True
        self._head_bytes = 0
        self._arm(self.limits.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._disarm()
        super().on_headers_complete()


def connection_limits(settings: Settings) -> ConnectionLimits:
    server = settings.server
    return ConnectionLimits(server.max_header_bytes + HEAD_SLACK_BYTES, server.header_timeout_s,
                            server.keepalive_idle_s)


