"""Payloads that carry their own version and SHA-256: a reader can tell one whole version from anything else."""

from __future__ import annotations

import hashlib
import os

HEADER = 8 + 32  # version number, then the SHA-256 of the rest


def payload(version: int, size: int) -> bytes:
    """size + version random bytes after the header: sizes differ by version, so a Content-Length names one."""
    rest = os.urandom(size + version)
    return version.to_bytes(8, "big") + hashlib.sha256(rest).digest() + rest


def version_of(body: bytes) -> int | None:
    """The version a body is, None if it is not one whole version."""
    if len(body) < HEADER or hashlib.sha256(body[HEADER:]).digest() != body[8:HEADER]:
        return None
    return int.from_bytes(body[:8], "big")
