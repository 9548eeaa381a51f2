"""The signature chain of a signed ``aws-chunked`` body: each chunk's and the trailer's signature, checked in order.

A ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` body carries a signature on every chunk
(``<hex size>;chunk-signature=<hex>``), computed over the chunk's data and the previous signature, starting from
the request's own (seed) signature; so a chunk changed, dropped, repeated or moved breaks the chain from there.
``...-PAYLOAD-TRAILER`` adds ``x-amz-trailer-signature`` over the trailing headers, chained from the final (empty)
chunk's signature. Both are HMAC-SHA256 with the request's signing key, as AWS's S3 documents them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cache.s3.errors import S3Error

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
TRAILER_SIGNATURE = "x-amz-trailer-signature"
# x-amz-content-sha256 -> whether its trailing headers carry a signature of their own
SIGNED_STREAMING = {"STREAMING-AWS4-HMAC-SHA256-PAYLOAD": False, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER": True}


def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """SigV4's derived key: HMAC of the scope's parts in turn, from "AWS4" + the secret."""
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def mismatch(what: str) -> S3Error:
    return S3Error("SignatureDoesNotMatch", f"The {what} signature we calculated does not match the signature you "
                   "provided. Check your key and signing method.")


@dataclass
class ChunkChain:
    """Checks each signature of one body in turn; ``previous`` starts as the request's verified signature."""

    key: bytes
    amz_date: str
    scope: str  # day/region/service/aws4_request
    previous: str
    signed_trailer: bool

    def _sign(self, kind: str, *hashes: str) -> str:
        text = "\n".join((kind, self.amz_date, self.scope, self.previous, *hashes))
        return hmac.digest(self.key, text.encode(), "sha256").hex()

    def chunk(self, data_sha256: str, offered: str | None) -> None:
        """The next chunk, by the SHA-256 of its data (the final chunk's is that of nothing)."""
        expected = self._sign("AWS4-HMAC-SHA256-PAYLOAD", _EMPTY_SHA256, data_sha256)
        if offered is None or not hmac.compare_digest(expected, offered.lower()):
            raise mismatch("chunk")
        self.previous = expected

    def trailer(self, trailers: dict[str, str], offered: str | None) -> None:
        """The trailing headers (names in lower case), signed as ``name:value\\n`` lines in name order. A body
        signed without a trailer may carry none: nothing would vouch for it."""
        if not self.signed_trailer:
            if trailers:
                raise mismatch("trailer")
            return
        canonical = "".join(f"{name}:{value}\n" for name, value in sorted(trailers.items()) if name != TRAILER_SIGNATURE)
        expected = self._sign("AWS4-HMAC-SHA256-TRAILER", hashlib.sha256(canonical.encode()).hexdigest())
        if offered is None or not hmac.compare_digest(expected, offered.lower()):
            raise mismatch("trailer")
