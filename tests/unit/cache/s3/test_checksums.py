"""The multipart checksum math against values computed independently: zlib, awscrt and hashlib over the bytes."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib

import pytest
from awscrt import checksums as crt
from hypothesis import given, settings
from hypothesis import strategies as st

from cache.s3.checksums import (
    ALGORITHMS,
    COMPOSITE,
    FULL_OBJECT,
    completed_checksum,
    composite,
    crc_combine,
    full_object,
    part_algorithm,
    same,
    upload_checksum,
)
from cache.s3.errors import S3Error
from cache.s3.model import BodyChecksums, PartInfo, SentChecksums

# each algorithm straight from its reference implementation, as raw digest bytes
REFERENCE = {
    "crc32": lambda data: zlib.crc32(data).to_bytes(4, "big"),
    "crc32c": lambda data: crt.crc32c(data).to_bytes(4, "big"),
    "crc64nvme": lambda data: crt.crc64nvme(data).to_bytes(8, "big"),
    "sha1": lambda data: hashlib.sha1(data).digest(),
    "sha256": lambda data: hashlib.sha256(data).digest(),
}
CRCS = ("crc32", "crc32c", "crc64nvme")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def part_values(name: str, parts: list[bytes]) -> list[tuple[str, int]]:
    return [(b64(REFERENCE[name](part)), len(part)) for part in parts]


@pytest.mark.parametrize(("name", "check"), [
    ("crc32", 0xCBF43926), ("crc32c", 0xE3069283), ("crc64nvme", 0xAE8B14860A799888),  # the catalogue's check values
])
def test_combining_the_crcs_of_two_halves_gives_the_crc_of_the_whole(name: str, check: int) -> None:
    for cut in range(10):
        head, tail = b"123456789"[:cut], b"123456789"[cut:]
        crc_head = int.from_bytes(REFERENCE[name](head), "big")
        crc_tail = int.from_bytes(REFERENCE[name](tail), "big")
        assert crc_combine(name, crc_head, crc_tail, len(tail)) == check


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(CRCS), st.lists(st.binary(max_size=3000), min_size=1, max_size=6))
def test_a_full_object_checksum_is_the_crc_of_the_concatenated_parts(name: str, parts: list[bytes]) -> None:
    assert full_object(name, part_values(name, parts)) == b64(REFERENCE[name](b"".join(parts)))


def test_a_full_object_checksum_of_large_parts() -> None:
    parts = [os.urandom(5 << 20), os.urandom(5 << 20), os.urandom(12345)]
    for name in CRCS:
        assert full_object(name, part_values(name, parts)) == b64(REFERENCE[name](b"".join(parts)))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_a_composite_checksum_is_the_checksum_of_the_raw_part_checksums_and_the_count(name: str) -> None:
    parts = [b"first part", b"second", os.urandom(1000)]
    raw = b"".join(REFERENCE[name](part) for part in parts)
    assert composite(name, [value for value, _ in part_values(name, parts)]) == f"{b64(REFERENCE[name](raw))}-3"


def test_a_known_composite_value() -> None:
    # sha256 of the two sha256 digests of b"a" and b"b", one after the other
    parts = [b64(hashlib.sha256(b"a").digest()), b64(hashlib.sha256(b"b").digest())]
    expected = hashlib.sha256(hashlib.sha256(b"a").digest() + hashlib.sha256(b"b").digest()).digest()
    assert composite("sha256", parts) == f"{b64(expected)}-2"


@pytest.mark.parametrize(("algorithm", "kind", "expected"), [
    (None, None, (None, None)),
    ("CRC32", None, ("crc32", COMPOSITE)),
    ("crc32c", "FULL_OBJECT", ("crc32c", FULL_OBJECT)),
    ("CRC32", "COMPOSITE", ("crc32", COMPOSITE)),
    ("CRC64NVME", None, ("crc64nvme", FULL_OBJECT)),
    ("CRC64NVME", "FULL_OBJECT", ("crc64nvme", FULL_OBJECT)),
    ("SHA1", None, ("sha1", COMPOSITE)),
    ("SHA256", "composite", ("sha256", COMPOSITE)),
])
def test_the_checksum_of_an_upload_and_its_defaults(algorithm: str | None, kind: str | None,
                                                    expected: tuple[str | None, str | None]) -> None:
    assert upload_checksum(algorithm, kind) == expected


@pytest.mark.parametrize(("algorithm", "kind"), [
    ("CRC64NVME", "COMPOSITE"), ("SHA1", "FULL_OBJECT"), ("SHA256", "FULL_OBJECT"),  # pairs S3 does not have
    (None, "FULL_OBJECT"),  # a type without an algorithm
    ("MD5", None), ("CRC16", None), ("CRC32", "PARTIAL"),
])
def test_an_upload_checksum_s3_does_not_have_is_invalid_request(algorithm: str | None, kind: str | None) -> None:
    with pytest.raises(S3Error) as refused:
        upload_checksum(algorithm, kind)
    assert (refused.value.code, refused.value.status) == ("InvalidRequest", 400)


def test_a_part_sent_with_another_algorithm_than_its_uploads_is_refused() -> None:
    assert part_algorithm("sha256", BodyChecksums({"sha256": "x"})) == "sha256"
    assert part_algorithm("sha256", BodyChecksums(trailing="sha256")) == "sha256"
    assert part_algorithm("sha256", None) == "sha256"  # none sent: the store computes it
    assert part_algorithm(None, BodyChecksums({"crc32": "x"})) is None  # an upload without one keeps none
    with pytest.raises(S3Error) as refused:
        part_algorithm("sha256", BodyChecksums(trailing="crc32"))
    assert refused.value.code == "InvalidRequest"
    assert "expected checksum Type: sha256, actual checksum Type: crc32" in refused.value.message


def _parts(name: str, datas: list[bytes]) -> list[PartInfo]:
    return [PartInfo(n, len(d), "etag", 0.0, {name: b64(REFERENCE[name](d))}) for n, d in enumerate(datas, 1)]


def test_complete_checks_what_it_is_sent_and_makes_the_objects_checksum() -> None:
    datas = [b"one", b"two"]
    parts = _parts("crc32", datas)
    named = {p.number: dict(p.checksums) for p in parts}
    made = completed_checksum("u", "crc32", COMPOSITE, parts, SentChecksums(named))
    assert made == {"crc32": composite("crc32", [p.checksums["crc32"] for p in parts])}
    # the whole object's checksum, with or without its -N, is accepted when it is the one made
    for whole in (made["crc32"], made["crc32"].rsplit("-", 1)[0]):
        assert completed_checksum("u", "crc32", COMPOSITE, parts, SentChecksums(named, {"crc32": whole})) == made
    full = completed_checksum("u", "crc32", FULL_OBJECT, parts, SentChecksums())  # parts need not be named
    assert full == {"crc32": b64(zlib.crc32(b"onetwo").to_bytes(4, "big"))}


@pytest.mark.parametrize(("kind", "sent", "code"), [
    (COMPOSITE, SentChecksums({1: {"crc32": "AAAAAA=="}, 2: {}}), "InvalidPart"),  # not part 1's checksum
    (COMPOSITE, SentChecksums({1: {}, 2: {}}), "InvalidRequest"),  # a composite Complete must name each part's
    (FULL_OBJECT, SentChecksums({}, {"crc32": "AAAAAA=="}), "BadDigest"),  # not the object's
    (FULL_OBJECT, SentChecksums({}, {"sha256": b64(bytes(32))}), "InvalidRequest"),  # another algorithm
    (FULL_OBJECT, SentChecksums({}, {}, "COMPOSITE"), "InvalidRequest"),  # another type
])
def test_complete_refuses_checksums_that_are_not_the_uploads(kind: str, sent: SentChecksums, code: str) -> None:
    with pytest.raises(S3Error) as refused:
        completed_checksum("u", "crc32", kind, _parts("crc32", [b"one", b"two"]), sent)
    assert refused.value.code == code


def test_an_upload_without_an_algorithm_has_no_checksum() -> None:
    assert completed_checksum("u", None, None, _parts("crc32", [b"x"]), SentChecksums({1: {"crc32": "bad"}})) == {}


def test_same() -> None:
    assert same("abc=-3", "abc=-3") and same("abc=-3", "abc=") and same("abc=", "abc=")
    assert not same("abc=-3", "abd=") and not same("abc=", "abc=-3")
