"""Request bodies: aws-chunked framing (SigV4 streaming), header checks and checksums, per the S3 docs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import zlib
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cache.s3.checksums import ALGORITHMS
from cache.s3.errors import S3Error
from proxy import body as body_module
from proxy.body import AwsChunkedDecoder, BodyCheck, body_check, decoded_body, read_xml_body
from proxy.http import MAX_SINGLE_PUT_BYTES, Request

SIG = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"

# Payload pieces that look like framing on purpose: data is data, whatever it contains.
CHUNKS = [b"hello \r\n", b"0\r\n\r\n", b"x" * 17, b";chunk-signature=zz\r\n", b"\r"]
PAYLOAD = b"".join(CHUNKS)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def crc32_b64(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def encode(
    chunks: Iterable[bytes],
    trailers: Iterable[tuple[str, str]] = (),
    signed: bool = False,
    trailer_signature: bool = False,
    final_blank_line: bool = True,
) -> bytes:
    """aws-chunked as the SigV4 streaming docs lay it out."""
    ext = f";chunk-signature={SIG}".encode() if signed else b""
    out = b"".join(b"%x" % len(chunk) + ext + b"\r\n" + chunk + b"\r\n" for chunk in chunks)
    out += b"0" + ext + b"\r\n"
    for name, value in trailers:
        out += f"{name}:{value}\r\n".encode()
    if trailer_signature:
        out += f"x-amz-trailer-signature:{SIG}\r\n".encode()
    if final_blank_line:
        out += b"\r\n"
    return out


def decode(pieces: Iterable[bytes]) -> tuple[bytes, dict[str, str]]:
    decoder = AwsChunkedDecoder()
    out = b"".join(b"".join(decoder.feed(piece)) for piece in pieces)
    decoder.finish()
    return out, decoder.trailers


def splits2(data: bytes) -> Iterable[list[bytes]]:
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


def splits3(data: bytes, window: int = 16) -> Iterable[list[bytes]]:
    """Every pair of cuts up to window bytes apart: a short middle piece lands inside every token."""
    for i in range(len(data) + 1):
        for j in range(i, min(len(data), i + window) + 1):
            yield [data[:i], data[i:j], data[j:]]


CRC = crc32_b64(PAYLOAD)
BODIES = {
    "signed": (encode(CHUNKS, signed=True), {}),
    "unsigned-trailer": (encode(CHUNKS, [("x-amz-checksum-crc32", CRC)]), {"x-amz-checksum-crc32": CRC}),
    "signed-trailer": (
        encode(CHUNKS, [("x-amz-checksum-crc32", CRC)], signed=True, trailer_signature=True),
        {"x-amz-checksum-crc32": CRC, "x-amz-trailer-signature": SIG},
    ),
    "two-trailers": (
        encode(CHUNKS, [("X-Amz-Checksum-CRC32", CRC), ("x-amz-meta-note", " spaced ")]),
        {"x-amz-checksum-crc32": CRC, "x-amz-meta-note": "spaced"},
    ),
    "no-final-blank-line": (
        encode(CHUNKS, [("x-amz-checksum-crc32", CRC)], final_blank_line=False),
        {"x-amz-checksum-crc32": CRC},
    ),
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_two_way_split_decodes_the_same(name: str) -> None:
    encoded, trailers = BODIES[name]
    for pieces in splits2(encoded):
        assert decode(pieces) == (PAYLOAD, trailers), pieces


@pytest.mark.parametrize("name", ["signed-trailer", "no-final-blank-line"])
def test_every_three_way_split_decodes_the_same(name: str) -> None:
    encoded, trailers = BODIES[name]
    for pieces in splits3(encoded):
        assert decode(pieces) == (PAYLOAD, trailers)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_byte_by_byte(name: str) -> None:
    encoded, trailers = BODIES[name]
    assert decode(encoded[i:i + 1] for i in range(len(encoded))) == (PAYLOAD, trailers)


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=6),
    signed=st.booleans(),
    with_trailer=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_random_bodies_in_random_splits(chunks: list[bytes], signed: bool, with_trailer: bool, cuts: list[int]) -> None:
    payload = b"".join(chunks)
    trailers = [("x-amz-checksum-crc32", crc32_b64(payload))] if with_trailer else []
    encoded = encode(chunks, trailers, signed=signed, trailer_signature=signed and with_trailer)
    points = sorted({min(c, len(encoded)) for c in cuts} | {0, len(encoded)})
    pieces = [encoded[a:b] for a, b in itertools.pairwise(points)]
    expected_trailers = dict(trailers)
    if signed and with_trailer:
        expected_trailers["x-amz-trailer-signature"] = SIG
    assert decode(pieces) == (payload, expected_trailers)


def test_large_chunk_from_the_sigv4_streaming_example() -> None:
    data = b"a" * 65536
    encoded = encode([data, b"a" * 1024], signed=True)
    assert encoded.startswith(f"10000;chunk-signature={SIG}\r\n".encode())
    pieces = [encoded[i:i + 8191] for i in range(0, len(encoded), 8191)]
    assert decode(pieces) == (b"a" * 66560, {})


def test_uppercase_hex_sizes() -> None:
    assert decode([b"A\r\n0123456789\r\n0\r\n\r\n"]) == (b"0123456789", {})


def test_empty_body_is_just_the_final_chunk() -> None:
    assert decode([encode([], signed=True)]) == (b"", {})
    assert decode([b"0\r\n\r\n"]) == (b"", {})


def framing_error(pieces: Iterable[bytes]) -> S3Error:
    with pytest.raises(S3Error) as exc:
        decode(pieces)
    return exc.value


@pytest.mark.parametrize(
    "encoded",
    [
        b"zz\r\nabc\r\n0\r\n\r\n",  # not hex
        b"\r\nabc\r\n0\r\n\r\n",  # empty size
        b";chunk-signature=abc\r\nabc\r\n0\r\n\r\n",
        b"-3\r\nabc\r\n0\r\n\r\n",  # chunk sizes are hex digits: no sign,
        b"+3\r\nabc\r\n0\r\n\r\n",
        b"0x3\r\nabc\r\n0\r\n\r\n",  # no 0x prefix,
        b"0_3\r\nabc\r\n0\r\n\r\n",  # no digit separators
        b"-1\r\n0\r\n\r\n",
        b"3 4\r\nabc\r\n0\r\n\r\n",
        b"3\r\nabcd\r\n0\r\n\r\n",  # chunk longer than declared
        b"3\r\nabcdef\r\n0\r\n\r\n",
        b"3\r\nabc\r\n0\r\n\r\nextra",  # data after the final chunk
        b"3\r\nabc\r\n0\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"3\r\nabc\r\n0\r\nnot a trailer line\r\n\r\n",
        b"1" * 5000 + b"\r\n",  # a chunk header that never ends
    ],
)
def test_malformed_framing_is_invalid_request(encoded: bytes) -> None:
    for cut in range(min(len(encoded), 200) + 1):  # cut anywhere in the first 200 bytes
        pieces = [encoded[:cut], encoded[cut:]]
        error = framing_error(pieces)
        assert (error.code, error.status) == ("InvalidRequest", 400), pieces


@pytest.mark.parametrize(
    "encoded",
    [
        b"",  # nothing at all
        b"3\r\nab",  # hung up inside a chunk
        b"3\r\nabc",  # chunk without its CRLF
        b"3\r\nabc\r",
        b"3\r\nabc\r\n",  # no final chunk
        b"3\r\nabc\r\n0",  # final chunk header cut short
        b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NhCm",  # trailer cut short
        b"5;chunk-signature=" + SIG.encode()[:10],
    ],
)
def test_truncated_bodies_are_incomplete(encoded: bytes) -> None:
    for pieces in splits2(encoded):
        error = framing_error(pieces)
        assert (error.code, error.status) == ("IncompleteBody", 400)


# ---- checksums --------------------------------------------------------------------------------------

VECTORS = {
    # CRC catalogue "check" values: the CRC of b"123456789"
    "crc32": (b"123456789", "cbf43926"),
    "crc32c": (b"123456789", "e3069283"),
    "crc64nvme": (b"123456789", "ae8b14860a799888"),
    # FIPS 180 test vectors
    "sha1": (b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    "sha256": (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_checksum_known_vectors(name: str) -> None:
    data, hexdigest = VECTORS[name]
    whole = ALGORITHMS[name].new()
    whole.update(data)
    assert whole.digest().hex() == hexdigest
    pieces = ALGORITHMS[name].new()
    for i in range(len(data)):
        pieces.update(data[i:i + 1])
    assert pieces.digest() == whole.digest()


@pytest.mark.parametrize(("name", "width"), [("crc32", 4), ("crc32c", 4), ("crc64nvme", 8)])
def test_crc_of_nothing_is_zero_in_full_width(name: str, width: int) -> None:
    assert ALGORITHMS[name].new().digest() == bytes(width)


def test_the_checksum_set_is_s3s() -> None:
    assert set(ALGORITHMS) == {"crc32", "crc32c", "crc64nvme", "sha1", "sha256"}


def test_crc32_base64_matches_aws_example_shape() -> None:
    summer = ALGORITHMS["crc32"].new()
    summer.update(b"123456789")
    assert b64(summer.digest()) == "y/Q5Jg=="


# ---- requests ----------------------------------------------------------------------------------------


def make_request(headers: dict[str, str], pieces: Iterable[bytes] = (), disconnect: bool = False) -> Request:
    messages: list[dict[str, object]] = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
    if disconnect:
        messages.append({"type": "http.disconnect"})
    else:
        messages.append({"type": "http.request", "body": b"", "more_body": False})
    queue = iter(messages)

    async def receive() -> dict[str, object]:
        return next(queue)

    scope = {
        "type": "http", "method": "PUT", "path": "/bucket/key", "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
    }
    return Request(scope, receive)


def run_body(request: Request, check: BodyCheck | None = None) -> tuple[list[bytes], BodyCheck, S3Error | None]:
    """The pieces handed on before the stream ended, the check, and the error it ended with (if any)."""
    check = check if check is not None else body_check(request)
    got: list[bytes] = []

    async def consume() -> S3Error | None:
        try:
            async for piece in decoded_body(request, check):
                got.append(piece)
        except S3Error as exc:
            return exc
        return None

    return got, check, asyncio.run(consume())


def ok_body(request: Request) -> tuple[bytes, BodyCheck]:
    got, check, error = run_body(request)
    assert error is None
    return b"".join(got), check


def failed(request: Request) -> tuple[bytes, S3Error]:
    got, _, error = run_body(request)
    assert error is not None
    return b"".join(got), error


def md5_b64(data: bytes) -> str:
    return b64(hashlib.md5(data).digest())


def test_plain_body_with_correct_content_md5_and_length() -> None:
    data = b"hello world"
    request = make_request({"content-length": "11", "content-md5": md5_b64(data)}, [b"hello", b" ", b"world"])
    assert ok_body(request)[0] == data


def test_content_md5_mismatch_is_bad_digest_and_last_bytes_are_held_back() -> None:
    request = make_request({"content-md5": md5_b64(b"something else")}, [b"hello", b" world"])
    got, error = failed(request)
    assert (error.code, error.status) == ("BadDigest", 400)
    assert got != b"hello world"  # the stream never hands on the whole body before the check


def test_signed_payload_sha256_mismatch() -> None:
    data = b"payload"
    good = make_request({"x-amz-content-sha256": hashlib.sha256(data).hexdigest()}, [data])
    assert ok_body(good)[0] == data
    bad = make_request({"x-amz-content-sha256": hashlib.sha256(b"other").hexdigest()}, [data])
    assert failed(bad)[1].code == "XAmzContentSHA256Mismatch"


def test_unsigned_payload_is_not_hashed() -> None:
    request = make_request({"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}, [b"anything"])
    assert ok_body(request)[0] == b"anything"


def test_short_body_is_incomplete() -> None:
    request = make_request({"content-length": "10"}, [b"12345"])
    assert failed(request)[1].code == "IncompleteBody"


def test_client_hanging_up_is_incomplete() -> None:
    request = make_request({"content-length": "10"}, [b"12345"], disconnect=True)
    assert failed(request)[1].code == "IncompleteBody"


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_checksum_header_verified(name: str) -> None:
    data = b"123456789"
    summer = ALGORITHMS[name].new()
    summer.update(data)
    value = b64(summer.digest())
    body, check = ok_body(make_request({f"x-amz-checksum-{name}": value}, [data[:4], data[4:]]))
    assert body == data
    assert check.checksums == {name: value}
    _, error = failed(make_request({f"x-amz-checksum-{name}": value}, [b"12345678X"]))
    assert (error.code, error.status) == ("BadDigest", 400)


def streaming_headers(payload: bytes, encoded: bytes, **extra: str) -> dict[str, str]:
    return {
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "content-encoding": "aws-chunked",
        "content-length": str(len(encoded)),
        "x-amz-decoded-content-length": str(len(payload)),
        **extra,
    }


def test_aws_chunked_with_trailing_checksum() -> None:
    encoded = encode(CHUNKS, [("x-amz-checksum-crc32", CRC)])
    headers = streaming_headers(PAYLOAD, encoded, **{"x-amz-trailer": "x-amz-checksum-crc32"})
    pieces = [encoded[i:i + 7] for i in range(0, len(encoded), 7)]
    body, check = ok_body(make_request(headers, pieces))
    assert body == PAYLOAD
    assert check.checksums == {"crc32": CRC}


def test_aws_chunked_with_wrong_trailing_checksum() -> None:
    wrong = crc32_b64(PAYLOAD + b"!")
    encoded = encode(CHUNKS, [("x-amz-checksum-crc32", wrong)])
    headers = streaming_headers(PAYLOAD, encoded, **{"x-amz-trailer": "x-amz-checksum-crc32"})
    got, error = failed(make_request(headers, [encoded]))
    assert error.code == "BadDigest"
    assert got != PAYLOAD


def test_aws_chunked_signed_streaming_body() -> None:
    encoded = encode(CHUNKS, signed=True)
    headers = streaming_headers(PAYLOAD, encoded, **{"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"})
    assert ok_body(make_request(headers, [encoded]))[0] == PAYLOAD


def test_aws_chunked_decoded_length_mismatch() -> None:
    encoded = encode(CHUNKS)
    headers = streaming_headers(PAYLOAD, encoded, **{"x-amz-decoded-content-length": str(len(PAYLOAD) + 1)})
    assert failed(make_request(headers, [encoded]))[1].code == "IncompleteBody"


def test_aws_chunked_truncated_stream() -> None:
    encoded = encode(CHUNKS)
    headers = streaming_headers(PAYLOAD, encoded)
    assert failed(make_request(headers, [encoded[:-3]]))[1].code == "IncompleteBody"


def test_aws_chunked_garbage() -> None:
    encoded = b"zz\r\nabc\r\n0\r\n\r\n"
    assert failed(make_request(streaming_headers(b"abc", encoded), [encoded]))[1].code == "InvalidRequest"


def test_content_encoding_alone_is_a_plain_body() -> None:
    """S3 decodes aws-chunked framing only under a STREAMING-* payload value; the encoding alone is stored as sent."""
    request = make_request({"content-encoding": "aws-chunked", "content-length": "3"}, [b"abc"])
    assert ok_body(request)[0] == b"abc"
    encoded = encode([b"abc"])
    request = make_request({"content-encoding": "aws-chunked", "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD",
                            "x-amz-decoded-content-length": "3"}, [encoded])
    assert ok_body(request)[0] == b"abc"


def test_stream_past_the_size_limit_is_entity_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_module, "MAX_SINGLE_PUT_BYTES", 10)
    _, error = failed(make_request({}, [b"123456", b"789012"]))
    assert (error.code, error.status) == ("EntityTooLarge", 400)


def test_read_xml_body_limit() -> None:
    assert asyncio.run(read_xml_body(make_request({}, [b"<a/>"]))) == b"<a/>"
    with pytest.raises(S3Error) as exc:
        asyncio.run(read_xml_body(make_request({}, [b"x" * 20]), limit_bytes=10))
    assert exc.value.code == "MalformedXML"


# ---- body_check ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "not base64!",
        "abc",  # bad padding
        b64(b"\x00" * 15),  # valid base64, but not 128 bits
        b64(b"\x00" * 17),
        hashlib.md5(b"x").hexdigest(),  # hex is not what Content-MD5 carries
        "",
    ],
)
def test_bad_content_md5_is_invalid_digest(value: str) -> None:
    with pytest.raises(S3Error) as exc:
        body_check(make_request({"content-md5": value}))
    assert (exc.value.code, exc.value.status) == ("InvalidDigest", 400)


def test_good_content_md5_is_kept_as_bytes() -> None:
    check = body_check(make_request({"content-md5": md5_b64(b"x")}))
    assert check.content_md5 == hashlib.md5(b"x").digest()


def test_size_limit_is_5_gib() -> None:
    assert MAX_SINGLE_PUT_BYTES == 5 * 1024**3
    assert body_check(make_request({"content-length": str(MAX_SINGLE_PUT_BYTES)})).expected_length == 5 << 30
    with pytest.raises(S3Error) as exc:
        body_check(make_request({"content-length": str(MAX_SINGLE_PUT_BYTES + 1)}))
    assert (exc.value.code, exc.value.status) == ("EntityTooLarge", 400)


def test_aws_chunked_limit_applies_to_the_decoded_length() -> None:
    big = str(MAX_SINGLE_PUT_BYTES + 1)
    # the encoded stream is longer than the object: only the decoded length counts
    check = body_check(make_request({"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                     "content-length": big, "x-amz-decoded-content-length": "5"}))
    assert check.expected_length == 5
    with pytest.raises(S3Error) as exc:
        body_check(make_request({"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                 "content-length": "100", "x-amz-decoded-content-length": big}))
    assert exc.value.code == "EntityTooLarge"


def test_non_numeric_length_is_a_client_error() -> None:
    with pytest.raises(S3Error) as exc:
        body_check(make_request({"content-length": "ten"}))
    assert exc.value.status == 400


def test_checksum_selection_from_headers_and_trailer() -> None:
    sha = b64(hashlib.sha256(b"abc").digest())
    check = body_check(make_request({"x-amz-checksum-sha256": sha}))
    assert (check.checksum_algorithm, check.checksum_value) == ("sha256", sha)
    check = body_check(make_request({"x-amz-trailer": "x-amz-checksum-crc64nvme"}))
    assert (check.checksum_algorithm, check.checksum_value) == ("crc64nvme", None)
    check = body_check(make_request({"x-amz-trailer": "X-Amz-Checksum-CRC32C"}))
    assert check.checksum_algorithm == "crc32c"
    check = body_check(make_request({}))
    assert (check.checksum_algorithm, check.checksum_value, check.content_md5, check.payload_sha256) == \
        (None, None, None, None)


@pytest.mark.parametrize(
    "headers",
    [{"x-amz-trailer": "x-amz-checksum-md5"}, {"x-amz-sdk-checksum-algorithm": "MD5"}],
)
def test_unsupported_checksum_algorithms_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(S3Error) as exc:
        body_check(make_request(headers))
    assert exc.value.code == "InvalidRequest"


def test_payload_sha256_only_for_signed_payloads() -> None:
    digest = hashlib.sha256(b"").hexdigest()
    assert body_check(make_request({"x-amz-content-sha256": digest.upper()})).payload_sha256 == digest
    for value in ("UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"):
        assert body_check(make_request({"x-amz-content-sha256": value})).payload_sha256 is None
