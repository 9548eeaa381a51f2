"""Signed aws-chunked bodies: AWS's published example, and every tampering caught by the chain; SigV2 verified."""

from __future__ import annotations

import datetime
from email.utils import format_datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cache.s3.errors import S3Error
from conf.settings import AuthSettings
from proxy.auth import authenticate
from proxy.body import AwsChunkedDecoder
from proxy.chunksig import ChunkChain, signing_key
from proxy.sigv2verify import verify_v2
from tests.chunked import SignedUpload

# AWS's example of a chunked upload (the S3 API reference, "Signature Calculations for the Authorization Header:
# Transferring Payload in Multiple Chunks"): 65 KiB of "a" in a 64 KiB and a 1 KiB chunk.
DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
DOC_SIGNATURES = ("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                  "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                  "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9")
SECRET = "her-secret"
SETTINGS = AuthSettings.model_validate({"mode": "sigv4", "users": {"alice": SECRET}})


def doc_chain() -> ChunkChain:
    return ChunkChain(signing_key(DOC_SECRET, "20130524", "us-east-1", "s3"), "20130524T000000Z",
                      "20130524/us-east-1/s3/aws4_request", DOC_SEED, signed_trailer=False)


def doc_body(signatures: tuple[str, ...] = DOC_SIGNATURES) -> bytes:
    chunks = (b"a" * 65536, b"a" * 1024, b"")
    return b"".join(f"{len(c):x};chunk-signature={s}\r\n".encode() + c + b"\r\n"
                    for c, s in zip(chunks, signatures, strict=True))


def decode(chain: ChunkChain | None, body: bytes, piece_bytes: int = 777) -> bytes:
    decoder = AwsChunkedDecoder(chain)
    out = b"".join(b"".join(decoder.feed(body[at:at + piece_bytes])) for at in range(0, len(body), piece_bytes))
    decoder.finish()
    return out


def test_the_aws_example_verifies_in_any_feeding() -> None:
    for piece_bytes in (1, 5, 4096, 1 << 20):
        assert decode(doc_chain(), doc_body(), piece_bytes) == b"a" * 66560


@pytest.mark.parametrize("index", [0, 1, 2])
def test_any_wrong_signature_in_the_aws_example_is_signature_does_not_match(index: int) -> None:
    signatures = list(DOC_SIGNATURES)
    signatures[index] = signatures[index][:-1] + ("0" if signatures[index][-1] != "0" else "1")
    with pytest.raises(S3Error) as caught:
        decode(doc_chain(), doc_body(tuple(signatures)))
    assert (caught.value.code, caught.value.status) == ("SignatureDoesNotMatch", 403)


def test_a_missing_chunk_signature_is_refused() -> None:
    body = doc_body().replace(f";chunk-signature={DOC_SIGNATURES[1]}".encode(), b"")
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
        decode(doc_chain(), body)


def upload(trailer: bool) -> SignedUpload:
    payload = bytes(range(256)) * 700  # three chunks of 64 KiB and a short one
    return SignedUpload("localhost:29998", "/b/k", payload, "alice", SECRET, trailer=trailer)


def chain_of(headers: dict[str, str]) -> ChunkChain | None:
    lower = {name.lower(): value for name, value in headers.items()}
    return authenticate(SETTINGS, "PUT", "/b/k", "", lower, {}).chain


@pytest.mark.parametrize("trailer", [False, True])
def test_a_signed_upload_verifies_and_its_tamperings_do_not(trailer: bool) -> None:
    sent = upload(trailer)
    headers, body = sent.request()
    assert decode(chain_of(headers), body) == sent.payload
    for tamper, swap in (("signature", False), ("data", False), ("", True)) + \
            ((("trailer", False), ("trailer-signature", False)) if trailer else ()):
        headers, body = sent.request(tamper, swap)
        with pytest.raises(S3Error) as caught:
            decode(chain_of(headers), body)
        assert caught.value.code == "SignatureDoesNotMatch", (tamper, swap)


def test_a_signed_trailer_must_be_there() -> None:
    sent = upload(trailer=True)
    headers, body = sent.request()
    cut = body.index(b"x-amz-trailer-signature:")
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
        decode(chain_of(headers), body[:cut] + b"\r\n")


def test_a_body_signed_without_a_trailer_may_not_carry_one() -> None:
    body = doc_body()
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
        decode(doc_chain(), body[:-2] + b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n")


def test_no_chain_for_unsigned_or_simple_mode() -> None:
    headers, _ = upload(trailer=False).request()
    lower = {name.lower(): value for name, value in headers.items()}
    assert authenticate(AuthSettings(), "PUT", "/b/k", "", lower, {}).chain is None
    lower["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"  # the seed no longer matches what was signed
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
        authenticate(SETTINGS, "PUT", "/b/k", "", lower, {})


# ---- SigV2 ---------------------------------------------------------------------------------------------------------

def test_sigv2_the_aws_example() -> None:
    headers = {"authorization": "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
               "date": "Tue, 27 Mar 2007 19:36:42 +0000"}
    secrets = {"AKIAIOSFODNN7EXAMPLE": DOC_SECRET}.get
    then = datetime.datetime(2007, 3, 27, 19, 40, tzinfo=datetime.UTC)
    assert verify_v2("GET", "/awsexamplebucket1/photos/puppy.jpg", "", headers, {}, secrets, 900, then) == \
        "AKIAIOSFODNN7EXAMPLE"
    with pytest.raises(S3Error) as caught:
        verify_v2("GET", "/awsexamplebucket1/photos/kitten.jpg", "", headers, {}, secrets, 900, then)
    assert caught.value.code == "SignatureDoesNotMatch"
    assert caught.value.extra["StringToSign"].endswith("/kitten.jpg")
    with pytest.raises(S3Error) as caught:
        verify_v2("GET", "/awsexamplebucket1/photos/puppy.jpg", "", headers, {}, secrets, 900,
                  then + datetime.timedelta(hours=1))
    assert (caught.value.code, caught.value.status) == ("RequestTimeTooSkewed", 403)
    assert caught.value.extra["MaxAllowedSkewMilliseconds"] == "900000"


def botocore_v2(secret: str, query_auth: bool = False) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """A PUT signed by botocore's SigV2 signer: (path, raw query, headers, query)."""
    request = AWSRequest(method="PUT", url="http://localhost:29998/b/my%20key?tagging&versionId=v%2B1&x-id=Put",
                         headers={"Content-Type": "text/plain", "x-amz-meta-color": " blue ",
                                  "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="})
    signer = HmacV1QueryAuth(Credentials("alice", secret), expires=60) if query_auth \
        else HmacV1Auth(Credentials("alice", secret))
    signer.add_auth(request)
    path, _, raw_query = request.url.partition("?")
    headers = {name.lower(): value for name, value in request.headers.items()}
    return urlsplit(path).path, raw_query, headers, dict(parse_qsl(raw_query, keep_blank_values=True))


@pytest.mark.parametrize("query_auth", [False, True])
def test_sigv2_from_botocore_verifies_with_the_right_secret_only(query_auth: bool) -> None:
    path, raw_query, headers, query = botocore_v2(SECRET, query_auth)
    assert authenticate(SETTINGS, "PUT", path, raw_query, headers, query).user == "alice"
    with pytest.raises(S3Error) as caught:
        authenticate(SETTINGS, "PUT", path, raw_query, {**headers, "x-amz-meta-color": "red"}, query)
    assert caught.value.code == "SignatureDoesNotMatch"
    path, raw_query, headers, query = botocore_v2("not-her-secret", query_auth)
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
        authenticate(SETTINGS, "PUT", path, raw_query, headers, query)


def test_sigv2_unknown_key_and_missing_date() -> None:
    path, raw_query, headers, query = botocore_v2(SECRET)
    with pytest.raises(S3Error) as caught:
        authenticate(AuthSettings.model_validate({"mode": "sigv4", "users": {"bob": "x"}}), "PUT", path, raw_query,
                     headers, query)
    assert (caught.value.code, caught.value.status, caught.value.extra) == \
        ("InvalidAccessKeyId", 403, {"AWSAccessKeyId": "alice"})
    del headers["date"]
    with pytest.raises(S3Error) as caught:
        authenticate(SETTINGS, "PUT", path, raw_query, headers, query)
    assert (caught.value.code, caught.value.message) == \
        ("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")


def test_sigv2_with_x_amz_date_signs_an_empty_date_line() -> None:
    now = datetime.datetime.now(datetime.UTC)
    path, raw_query, headers, query = botocore_v2(SECRET)
    headers = {**headers, "x-amz-date": format_datetime(now, usegmt=True), "date": "not a date"}
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):  # botocore signed the Date line, not x-amz-date
        authenticate(SETTINGS, "PUT", path, raw_query, headers, query)


@pytest.mark.parametrize("mode", ["simple", "sigv4"])
@pytest.mark.parametrize("query_auth", [False, True])
def test_sigv2_refused_when_switched_off(mode: str, query_auth: bool) -> None:
    settings = AuthSettings.model_validate({"mode": mode, "users": {"alice": SECRET}, "sigv2": False})
    path, raw_query, headers, query = botocore_v2(SECRET, query_auth)
    with pytest.raises(S3Error) as caught:
        authenticate(settings, "PUT", path, raw_query, headers, query)
    assert (caught.value.code, caught.value.status) == ("InvalidRequest", 400)
    assert "Please use AWS4-HMAC-SHA256" in caught.value.message
