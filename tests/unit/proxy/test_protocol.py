"""proxy.cli.protocol.CoalescingTransport: small writes of one loop turn leave as one write, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from proxy.cli.protocol import CoalescingTransport


class Recording:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_a_head_and_a_small_body_leave_as_one_write_in_order() -> None:
    async def go() -> Recording:
        real = Recording()
        transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        body = bytearray(b"body")
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(body)
        body[:] = b"XXXX"  # the caller reuses its buffer: what was written must not change
        assert real.writes == []  # held until the end of this turn of the loop
        await asyncio.sleep(0)
        return real

    assert asyncio.run(go()).writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]


def test_a_large_write_sends_what_is_held_first_then_goes_straight_through() -> None:
    async def go() -> Recording:
        real = Recording()
        transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"head")
        transport.write(b"x" * (1 << 20))
        assert real.writes == [b"head", b"x" * (1 << 20)]
        transport.write(b"tail")
        transport.close()  # closing sends what is held before the connection goes
        assert real.closed
        await asyncio.sleep(0)
        return real

    real = asyncio.run(go())
    assert real.writes == [b"head", b"x" * (1 << 20), b"tail"]
    assert CoalescingTransport(real, None).get_extra_info("peername") == "info:peername"  # type: ignore[arg-type]
