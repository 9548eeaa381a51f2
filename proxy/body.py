"""Request bodies as clients send them, decoded and checked the way S3 checks them.

Handles plain bodies, ``aws-chunked`` content encoding (signed chunks, unsigned chunks with trailers),
``Content-MD5``, ``x-amz-content-sha256`` of signed payloads, and ``x-amz-checksum-*`` values in headers
or trailers. The decoded stream raises before it ends when a check fails, so a store that commits only
after the stream is exhausted never commits bad bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from cache.s3.checksums import ALGORITHMS, well_formed
from cache.s3.errors import S3Error
from cache.s3.model import BodyChecksums
from proxy.chunksig import TRAILER_SIGNATURE, ChunkChain
from proxy.http import MAX_SINGLE_PUT_BYTES, Request
from proxy.xml import MAX_XML_BODY_BYTES

_MAX_CHUNK_HEADER_BYTES = 4096
_HEX_RE = re.compile(rb"[0-9a-fA-F]+")
_CHUNK_SIGNATURE = b"chunk-signature="


def malformed_trailer() -> S3Error:
    return S3Error("MalformedTrailerError")


def _framing_error(message: str) -> S3Error:
    return S3Error("InvalidRequest", f"Malformed aws-chunked body: {message}")


class AwsChunkedDecoder:
    """Incremental decoder of ``<hex size>[;chunk-signature=...]\\r\\n<data>\\r\\n ... 0\\r\\n<trailers>\\r\\n``.

    Given the chain of a verified signed body, each chunk's signature is checked once its data is in, and the
    trailer's once the trailers are: a bad one raises before the next chunk's bytes are handed on."""

    def __init__(self, chain: ChunkChain | None = None) -> None:
        self._head = b""  # bytes of a chunk header, CRLF or trailer line not yet complete
        self._remaining = 0  # data bytes left in the current chunk
        self._state = "size"
        self.trailers: dict[str, str] = {}
        self._chain = chain
        self._offered: str | None = None  # the current chunk's chunk-signature
        self._chunk_sha = hashlib.sha256() if chain else None

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        pos = 0
        end = len(data)
        while pos < end:
            if self._state == "data":
                take = min(self._remaining, end - pos)
                piece = data[pos:pos + take]
                out.append(piece)
                pos += take
                self._remaining -= take
                if self._chunk_sha is not None:
                    self._chunk_sha.update(piece)
                if self._remaining == 0:
                    self._state = "crlf"
                    self._end_of_chunk()
                continue
            if self._state == "done":
                if data[pos:].strip():
                    raise _framing_error("data after the final chunk")
                return out
            line, pos = self._line(data, pos)
            if line is None:
                break
            self._step(line)
        return out

    def _line(self, data: bytes, pos: int) -> tuple[bytes | None, int]:
        buffered = self._head + data[pos:pos + _MAX_CHUNK_HEADER_BYTES + 2]
        cut = buffered.find(b"\r\n")
        if cut < 0:
            if len(buffered) > _MAX_CHUNK_HEADER_BYTES:
                raise _framing_error("chunk header too long")
            self._head = buffered
            return None, len(data)
        consumed_from_data = cut + 2 - len(self._head)
        self._head = b""
        return buffered[:cut], pos + consumed_from_data

    def _step(self, line: bytes) -> None:
        if self._state == "crlf":
            if line:
                raise _framing_error("chunk data longer than its declared size")
            self._state = "size"
        elif self._state == "size":
            size_field, _, extension = line.partition(b";")
            size_field = size_field.strip()
            if not _HEX_RE.fullmatch(size_field):  # int(x, 16) alone would take "-3", "+3", "0x3", "0_3"
                raise _framing_error(f"bad chunk size {size_field[:20]!r}")
            size = int(size_field, 16)
            extension = extension.strip()
            self._offered = extension[len(_CHUNK_SIGNATURE):].decode("latin-1") \
                if extension.startswith(_CHUNK_SIGNATURE) else None
            if size == 0:
                self._state = "trailer"
                self._end_of_chunk()
            else:
                self._remaining = size
                self._state = "data"
        elif self._state == "trailer":
            if not line:
                self._state = "done"
                self._end_of_trailers()
                return
            name, sep, value = line.partition(b":")
            if not sep:
                raise _framing_error("bad trailer line")
            self.trailers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")

    def _end_of_chunk(self) -> None:
        if self._chain is not None and self._chunk_sha is not None:
            self._chain.chunk(self._chunk_sha.hexdigest(), self._offered)
            self._chunk_sha = hashlib.sha256()

    def _end_of_trailers(self) -> None:
        if self._chain is not None:
            self._chain.trailer(self.trailers, self.trailers.get(TRAILER_SIGNATURE))

    def finish(self) -> None:
        if self._state == "trailer" and not self._head:
            self._end_of_trailers()  # some clients end after the last trailer without the closing blank line
            return
        if self._state != "done":
            raise S3Error("IncompleteBody")


@dataclass
class BodyCheck:
    """What a request body must turn out to be; checksums fills in as trailers arrive."""

    content_md5: bytes | None = None
    payload_sha256: str | None = None
    checksum_algorithm: str | None = None
    checksum_value: str | None = None  # None while it is still to come in a trailer
    expected_length: int | None = None
    checksums: dict[str, str] = field(default_factory=dict)
    chain: ChunkChain | None = None  # a verified signed aws-chunked body's signature chain


def sent_checksums(check: BodyCheck) -> BodyChecksums:
    """The checksum a client sends with a body, as a store passes it on: a value known up front (a header) at
    once, one in a trailer by its algorithm, its value in check.checksums once the body has ended."""
    if check.checksum_algorithm and check.checksum_value is not None:
        check.checksums[check.checksum_algorithm] = check.checksum_value
    return BodyChecksums(check.checksums, check.checksum_algorithm if check.checksum_value is None else None)


def _algorithm_of(request: Request, headers: bool = True) -> tuple[str | None, str | None]:
    for name in ALGORITHMS if headers else ():
        value = request.headers.get(f"x-amz-checksum-{name}")
        if value is not None:
            if not well_formed(name, value):  # unreadable, not mismatched: S3 says InvalidRequest, not BadDigest
                raise S3Error("InvalidRequest", f"Value for x-amz-checksum-{name} header is invalid.")
            return name, value
    trailer = request.headers.get("x-amz-trailer", "").strip().lower()
    if trailer.startswith("x-amz-checksum-"):
        name = trailer[len("x-amz-checksum-"):]
        if name in ALGORITHMS:
            return name, None
        raise S3Error("InvalidRequest", f"Unsupported trailer {trailer}")
    declared = request.headers.get("x-amz-sdk-checksum-algorithm", "").strip().lower()
    if declared and declared not in ALGORITHMS:
        raise S3Error("InvalidRequest", f"Unsupported checksum algorithm {declared}")
    return None, None


def _is_aws_chunked(request: Request) -> bool:
    """Whether the body is aws-chunked framing. The STREAMING-* payload value says so; ``Content-Encoding:
    aws-chunked`` alone does not: S3 stores such a body as sent (and drops aws-chunked from the stored encoding)."""
    return request.headers.get("x-amz-content-sha256", "").startswith("STREAMING-")


def body_check(request: Request, checksum_headers: bool = True) -> BodyCheck:
    """Read and validate the headers that describe a body, before any of it is read. checksum_headers=False: the
    request's x-amz-checksum-* headers are not of its body (CompleteMultipartUpload's are the object's); a
    checksum in a trailer still is."""
    check = BodyCheck(chain=request.chain)
    md5 = request.headers.get("content-md5")
    if md5 is not None:
        try:
            check.content_md5 = base64.b64decode(md5, validate=True)
        except (binascii.Error, ValueError):
            raise S3Error("InvalidDigest") from None
        if len(check.content_md5) != 16:
            raise S3Error("InvalidDigest")
    sha = request.headers.get("x-amz-content-sha256", "")
    if len(sha) == 64:
        check.payload_sha256 = sha.lower()
    check.checksum_algorithm, check.checksum_value = _algorithm_of(request, checksum_headers)
    length_header = request.headers.get("x-amz-decoded-content-length") if _is_aws_chunked(request) \
        else request.headers.get("content-length")
    if length_header is not None:
        try:
            check.expected_length = int(length_header)
        except ValueError:
            raise S3Error("InvalidArgument", "Content-Length is not a number") from None
        if check.expected_length > MAX_SINGLE_PUT_BYTES:
            raise S3Error("EntityTooLarge", extra={"ProposedSize": length_header,
                                                   "MaxSizeAllowed": str(MAX_SINGLE_PUT_BYTES)})
    return check


async def decoded_body(request: Request, check: BodyCheck) -> AsyncIterator[bytes]:
    """The body's bytes, decoded; raises BadDigest/IncompleteBody/... before the last byte is handed on."""
    decoder = AwsChunkedDecoder(check.chain) if _is_aws_chunked(request) else None
    md5 = hashlib.md5() if check.content_md5 is not None else None
    sha = hashlib.sha256() if check.payload_sha256 is not None else None
    summer = ALGORITHMS[check.checksum_algorithm].new() if check.checksum_algorithm else None
    size = 0
    held: bytes | None = None  # the last piece is held back until every check has passed
    async for raw in request.body():
        pieces = decoder.feed(raw) if decoder else [raw]
        for piece in pieces:
            if not piece:
                continue
            size += len(piece)
            if size > MAX_SINGLE_PUT_BYTES:
                raise S3Error("EntityTooLarge")
            for hasher in (md5, sha, summer):
                if hasher is not None:
                    hasher.update(piece)
            if held is not None:
                yield held
            held = piece
    if decoder:
        decoder.finish()
    if check.expected_length is not None and size != check.expected_length:
        raise S3Error("IncompleteBody")
    if md5 is not None and md5.digest() != check.content_md5:
        raise S3Error("BadDigest")
    if sha is not None and sha.hexdigest() != check.payload_sha256:
        raise S3Error("XAmzContentSHA256Mismatch")
    if summer is not None and check.checksum_algorithm:
        name = check.checksum_algorithm
        expected = check.checksum_value
        if expected is None:  # declared in x-amz-trailer: it must have come, well-formed, under that name
            expected = decoder.trailers.get(f"x-amz-checksum-{name}") if decoder is not None else None
            if expected is None or not well_formed(name, expected):
                raise malformed_trailer()
        computed = base64.b64encode(summer.digest()).decode()
        if expected is not None and expected != computed:
            raise S3Error("BadDigest", f"The {name.upper()} you specified did not match the calculated checksum.")
        check.checksums[name] = computed
    if held is not None:
        yield held


async def read_xml_body(request: Request, limit_bytes: int = MAX_XML_BODY_BYTES, checksum_headers: bool = True) -> bytes:
    """A whole (small) XML request body, decoded and checked; refused past limit_bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in decoded_body(request, body_check(request, checksum_headers)):
        size += len(chunk)
        if size > limit_bytes:
            raise S3Error("MalformedXML", f"The XML body is larger than {limit_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)
