"""S3's flexible checksums: the five algorithms, the checksum types a multipart upload may take, and the math of a
multipart object's checksum (composite: a checksum of the part checksums; full object: the part CRCs combined).

No I/O. A CRC of A+B is combined from crc(A), crc(B) and len(B) alone (zlib's crc32_combine method, generalised
to any reflected CRC whose register starts and ends inverted, which all three of S3's are), so a full-object
checksum is made from the part checksums recorded as each part streamed in, without reading a part again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from awscrt import checksums as crt

from cache.s3.errors import S3Error
from cache.s3.model import BodyChecksums, PartInfo, SentChecksums, multipart_etag_parts

COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"


class Summer(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc:
    def __init__(self, fn: Callable[[bytes, int], int], width_bytes: int) -> None:
        self.fn, self.width, self.value = fn, width_bytes, 0

    def update(self, data: bytes, /) -> None:
        self.value = self.fn(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(self.width, "big")


@dataclass(frozen=True)
class Algorithm:
    """One checksum algorithm: how to compute it, its digest size, the multipart checksum types it allows (the
    first is the default) and, for a CRC, its reflected polynomial (what combining two CRCs needs)."""

    name: str  # as x-amz-checksum-<name> spells it
    new: Callable[[], Summer]
    digest_bytes: int
    types: tuple[str, ...]
    reflected_poly: int | None = None

    @property
    def b64_chars(self) -> int:
        return 4 * ((self.digest_bytes + 2) // 3)


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("crc32", lambda: _Crc(lambda d, v: zlib.crc32(d, v), 4), 4, (COMPOSITE, FULL_OBJECT), 0xEDB88320),
    Algorithm("crc32c", lambda: _Crc(crt.crc32c, 4), 4, (COMPOSITE, FULL_OBJECT), 0x82F63B78),
    Algorithm("crc64nvme", lambda: _Crc(crt.crc64nvme, 8), 8, (FULL_OBJECT,), 0x9A6C9329AC4BC9B5),
    Algorithm("sha1", hashlib.sha1, 20, (COMPOSITE,)),
    Algorithm("sha256", hashlib.sha256, 32, (COMPOSITE,)),
)}


def well_formed(name: str, value: str) -> bool:
    """A checksum value S3 can compare at all: base64 of exactly the algorithm's digest size."""
    try:
        return len(base64.b64decode(value, validate=True)) == ALGORITHMS[name].digest_bytes
    except (binascii.Error, ValueError):
        return False


def of_bytes(name: str, data: bytes) -> str:
    summer = ALGORITHMS[name].new()
    summer.update(data)
    return base64.b64encode(summer.digest()).decode()


def upload_checksum(algorithm: str | None, checksum_type: str | None) -> tuple[str | None, str | None]:
    """CreateMultipartUpload's x-amz-checksum-algorithm and x-amz-checksum-type judged as S3 judges them: the
    (lower-case algorithm, type) of the upload, the type defaulting to the algorithm's first; InvalidRequest for an
    unknown algorithm or type, a type without an algorithm, or a pair S3 does not allow."""
    name = algorithm.strip().lower() if algorithm else None
    kind = checksum_type.strip().upper() if checksum_type else None
    if name is None:
        if kind is not None:
            raise S3Error("InvalidRequest", "The x-amz-checksum-type header can only be used with the "
                                            "x-amz-checksum-algorithm header.")
        return None, None
    if name not in ALGORITHMS:
        raise S3Error("InvalidRequest", "Checksum algorithm provided is unsupported. Please try again with any of "
                                        "the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
    allowed = ALGORITHMS[name].types
    if kind is None:
        return name, allowed[0]
    if kind not in (COMPOSITE, FULL_OBJECT):
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
    if kind not in allowed:
        raise S3Error("InvalidRequest", f"The {kind} checksum type cannot be used with the {name} checksum "
                                        "algorithm.")
    return name, kind


def composite(name: str, part_checksums: list[str]) -> str:
    """A composite multipart checksum: the checksum of the parts' raw checksums, one after another, then ``-N``."""
    raw = b"".join(base64.b64decode(value) for value in part_checksums)
    return f"{of_bytes(name, raw)}-{len(part_checksums)}"


def _multiply(a: int, b: int, poly: int, top: int) -> int:
    """a * b modulo the CRC polynomial, both reflected (the bit for x**0 is `top`)."""
    product = 0
    mask = top
    while mask:
        if a & mask:
            product ^= b
        mask >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1
    return product


def _x_to_8n(n: int, poly: int, top: int) -> int:
    """x**(8n) modulo the polynomial: the factor that moves a CRC past n zero bytes, by repeated squaring."""
    result, square = top, top >> 8  # 1, and x**8
    while n:
        if n & 1:
            result = _multiply(square, result, poly, top)
        square = _multiply(square, square, poly, top)
        n >>= 1
    return result


def crc_combine(name: str, crc_a: int, crc_b: int, length_b: int) -> int:
    """The CRC of A+B from crc(A), crc(B) and len(B): crc(A) carried past len(B) bytes, added to crc(B)."""
    algorithm = ALGORITHMS[name]
    assert algorithm.reflected_poly is not None, f"{name} is not a CRC"
    top = 1 << (8 * algorithm.digest_bytes - 1)
    return _multiply(_x_to_8n(length_b, algorithm.reflected_poly, top), crc_a, algorithm.reflected_poly, top) ^ crc_b


def full_object(name: str, parts: list[tuple[str, int]]) -> str:
    """A full-object multipart checksum: the CRC of all the parts' bytes, from each part's (checksum, size)."""
    crc = 0  # the CRC of no bytes
    for value, size in parts:
        crc = crc_combine(name, crc, int.from_bytes(base64.b64decode(value), "big"), size)
    return base64.b64encode(crc.to_bytes(ALGORITHMS[name].digest_bytes, "big")).decode()


def multipart(name: str, checksum_type: str, parts: list[tuple[str, int]]) -> str:
    """The object checksum a Complete of parts (each its checksum and size) makes, by the upload's type."""
    if checksum_type == FULL_OBJECT:
        return full_object(name, parts)
    return composite(name, [value for value, _ in parts])


def part_algorithm(upload: str | None, sent: BodyChecksums | None) -> str | None:
    """The algorithm a part's checksum is kept in: its upload's. A part sent with a checksum of another algorithm
    is refused, as S3 refuses it."""
    names = (set(sent.values) | ({sent.trailing} if sent.trailing else set())) if sent is not None else set()
    others = sorted(names - {upload})
    if upload is not None and others:
        raise S3Error("InvalidRequest", f"Checksum Type mismatch occurred, expected checksum Type: {upload}, "
                                        f"actual checksum Type: {others[0]}")
    return upload


def completed_checksum(upload_id: str, algorithm: str | None, checksum_type: str | None, parts: list[PartInfo],
                       sent: SentChecksums) -> dict[str, str]:
    """The checksum of the object a Complete of parts (with the checksums each was stored with) makes, as
    {algorithm: value}, after checking what the request names: a part's checksum that is not the part's is
    InvalidPart; a composite upload's Complete must name every part's; a checksum of the whole object that is
    not the one made is BadDigest. An upload created without an algorithm has none, and nothing is checked."""
    if algorithm is None or checksum_type is None:
        return {}
    if sent.checksum_type is not None and sent.checksum_type.strip().upper() != checksum_type:
        raise S3Error("InvalidRequest", f"The upload was created using the {checksum_type} checksum mode. The "
                                        "complete request must use the same checksum mode.")
    for part in parts:
        given = sent.parts.get(part.number, {})
        for name, value in given.items():
            if part.checksums.get(name) != value.strip():
                raise S3Error("InvalidPart", extra={"UploadId": upload_id, "PartNumber": str(part.number)})
        if checksum_type == COMPOSITE and algorithm not in given:
            raise S3Error("InvalidRequest", f"The upload was created using a {algorithm} checksum. The complete "
                                            "request must include the checksum for each part. It was missing for "
                                            f"part {part.number} in the request.")
    value = multipart(algorithm, checksum_type, [(part.checksums[algorithm], part.size) for part in parts])
    for name, whole in sent.whole.items():
        if name != algorithm:
            raise S3Error("InvalidRequest", f"Checksum Type mismatch occurred, expected checksum Type: {algorithm}, "
                                            f"actual checksum Type: {name}")
        if not same(value, whole):
            raise S3Error("BadDigest", f"The {name.upper()} you specified did not match the calculated checksum.")
    return {algorithm: value}


def type_of(checksums: dict[str, str], checksum_type: str | None, etag: str) -> str | None:
    """The checksum type an object's checksums are answered with: the one it was made with; else what the object
    says: FULL_OBJECT for an object not uploaded in parts (a checksum of its bytes), COMPOSITE for a multipart one
    whose algorithms S3 keeps only as composite (SHA1, SHA256); None when that is not known or there is none."""
    if checksum_type or not checksums:
        return checksum_type
    if multipart_etag_parts(etag) is None:
        return FULL_OBJECT
    return COMPOSITE if all(ALGORITHMS[name].types == (COMPOSITE,) for name in checksums if name in ALGORITHMS) \
        else None


def same(stored: str, sent: str) -> bool:
    """Whether a checksum a client sent names the stored one: a composite may be sent with or without its ``-N``."""
    return sent.strip() == stored or sent.strip() == stored.rsplit("-", 1)[0]


def header_name(name: str) -> str:
    return f"x-amz-checksum-{name}"


def element_name(name: str) -> str:
    """The XML element S3 carries a checksum in: ChecksumCRC32, ChecksumCRC64NVME, ChecksumSHA256..."""
    return f"Checksum{name.upper()}"
