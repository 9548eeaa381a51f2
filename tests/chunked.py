"""A client's side of signed ``aws-chunked`` uploads, for tests: the seed-signed request head (awscrt, as SDKs sign
it) and the chunk and trailer signatures chained after it, written from AWS's description of the format, apart
from the server's code, so a test can send a right body or tamper with exactly one part of it."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import zlib
from dataclasses import dataclass, field

from awscrt import auth
from awscrt import http as crt_http

EMPTY = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


@dataclass
class SignedUpload:
    """One PUT of ``payload`` in chunks of ``chunk_bytes``; ``trailer``: a signed crc32 trailer follows."""

    host: str
    path: str
    payload: bytes
    access_key: str
    secret: str
    chunk_bytes: int = 64 << 10
    trailer: bool = False
    signed: bool = True  # False: STREAMING-UNSIGNED-PAYLOAD-TRAILER, chunks without signatures (trailer implied)
    region: str = "us-east-1"
    when: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))

    @property
    def content_sha256(self) -> str:
        if not self.signed:
            return "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if self.trailer else "")

    def headers(self) -> dict[str, str]:
        """The request's headers, seed-signed by awscrt."""
        kept = [("host", self.host), ("content-encoding", "aws-chunked"),
                ("x-amz-decoded-content-length", str(len(self.payload)))]
        if self.trailer or not self.signed:
            kept.append(("x-amz-trailer", "x-amz-checksum-crc32"))
        request = crt_http.HttpRequest("PUT", self.path, headers=crt_http.HttpHeaders(kept))
        config = auth.AwsSigningConfig(
            algorithm=auth.AwsSigningAlgorithm.V4, signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=auth.AwsCredentialsProvider.new_static(self.access_key, self.secret),
            region=self.region, service="s3", date=self.when, use_double_uri_encode=False,
            should_normalize_uri_path=False, signed_body_value=self.content_sha256,
            signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256)
        auth.aws_sign_request(request, config).result()
        return dict(request.headers)

    def _scope(self) -> tuple[bytes, str, str]:
        day = self.when.strftime("%Y%m%d")
        key = ("AWS4" + self.secret).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return key, self.when.strftime("%Y%m%dT%H%M%SZ"), f"{day}/{self.region}/s3/aws4_request"

    def chunks(self) -> list[bytes]:
        pieces = [self.payload[at:at + self.chunk_bytes] for at in range(0, len(self.payload), self.chunk_bytes)]
        return [*pieces, b""]

    def body(self, seed: str, tamper: str = "", swap: bool = False) -> bytes:
        """The wire body chained from ``seed``; tamper: "signature" (the first chunk's), "data" (a byte of the
        first chunk after signing), "trailer" (the checksum after signing), "trailer-signature"; swap: the first two
        chunks sent in each other's place, each with the signature of its own place."""
        key, amz_date, scope = self._scope()
        previous, frames = seed, []
        for index, chunk in enumerate(self.chunks()):
            sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY,
                             hashlib.sha256(chunk).hexdigest()])
            previous = _hmac(key, sts).hex()
            offered = "0" * 64 if tamper == "signature" and index == 0 else previous
            sent = bytes([chunk[0] ^ 1]) + chunk[1:] if tamper == "data" and index == 0 else chunk
            end = b"" if (self.trailer or not self.signed) and not chunk else b"\r\n"  # then trailers, a blank line
            extension = f";chunk-signature={offered}" if self.signed else ""
            frames.append(f"{len(chunk):x}{extension}\r\n".encode() + sent + end)
        if swap:
            frames[0], frames[1] = frames[1], frames[0]
        wire = bytearray(b"".join(frames))
        if self.trailer or not self.signed:
            crc = base64.b64encode(zlib.crc32(self.payload).to_bytes(4, "big")).decode()
            canonical = f"x-amz-checksum-crc32:{crc}\n"
            sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous,
                             hashlib.sha256(canonical.encode()).hexdigest()])
            signature = _hmac(key, sts).hex()
            if tamper == "trailer":
                canonical = "x-amz-checksum-crc32:AAAAAA==\n"
            if tamper == "trailer-signature":
                signature = "f" * 64
            wire += canonical.replace("\n", "\r\n").encode()
            wire += (f"x-amz-trailer-signature:{signature}\r\n" if self.signed else "").encode() + b"\r\n"
        return bytes(wire)

    def request(self, tamper: str = "", swap: bool = False) -> tuple[dict[str, str], bytes]:
        """Headers and body of the whole PUT."""
        headers = self.headers()
        return headers, self.body(headers["Authorization"].rsplit("Signature=", 1)[1], tamper, swap)
