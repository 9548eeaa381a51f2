"""Who the caller is, from every S3 credential form (SigV4/SigV2, header/query), and malformed forms."""

from __future__ import annotations

import pytest

from cache.s3.errors import S3Error
from proxy.auth import user_of

SIG = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
CRED = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
V4 = f"AWS4-HMAC-SHA256 Credential={CRED},SignedHeaders=host;range;x-amz-date,Signature={SIG}"


def error_of(headers: dict[str, str], query: dict[str, str] | None = None) -> S3Error:
    with pytest.raises(S3Error) as exc:
        user_of(headers, query or {})
    return exc.value


@pytest.mark.parametrize(
    "authorization",
    [
        V4,  # the SigV4 docs' example
        f"AWS4-HMAC-SHA256 Credential={CRED}, SignedHeaders=host;range;x-amz-date, Signature={SIG}",
        f"AWS4-HMAC-SHA256 SignedHeaders=host,Signature={SIG},Credential={CRED}",  # any order
    ],
)
def test_sigv4_header(authorization: str) -> None:
    assert user_of({"authorization": authorization}, {}) == "AKIAIOSFODNN7EXAMPLE"


def test_sigv4_header_user_is_any_access_key() -> None:
    authorization = "AWS4-HMAC-SHA256 Credential=alice/20260101/eu-west-3/s3/aws4_request,SignedHeaders=host,Signature=ab"
    assert user_of({"authorization": authorization}, {}) == "alice"


def test_sigv4_presigned_query() -> None:
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": CRED, "X-Amz-Date": "20130524T000000Z",
        "X-Amz-Expires": "86400", "X-Amz-SignedHeaders": "host", "X-Amz-Signature": SIG,
    }
    assert user_of({}, query) == "AKIAIOSFODNN7EXAMPLE"


def test_sigv2_header() -> None:
    assert user_of({"authorization": "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g="}, {}) == \
        "AKIAIOSFODNN7EXAMPLE"


def test_sigv2_presigned_query() -> None:
    query = {"AWSAccessKeyId": "AKIAIOSFODNN7EXAMPLE", "Expires": "1141889120", "Signature": "vjbyPxybdZaNmGa+yT272YEAiv4="}
    assert user_of({}, query) == "AKIAIOSFODNN7EXAMPLE"


def test_anonymous() -> None:
    assert user_of({}, {}) is None
    assert user_of({"host": "localhost"}, {"prefix": "a"}) is None


def test_unrelated_query_parameters_do_not_matter() -> None:
    assert user_of({"authorization": V4}, {"list-type": "2"}) == "AKIAIOSFODNN7EXAMPLE"


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256",  # nothing after the scheme
        f"AWS4-HMAC-SHA256 SignedHeaders=host,Signature={SIG}",  # no Credential
        f"AWS4-HMAC-SHA256 Credential={CRED},SignedHeaders=host",  # no Signature
        f"AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3,SignedHeaders=host,Signature={SIG}",  # short scope
        f"AWS4-HMAC-SHA256 Credential=/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature={SIG}",
        f"AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws5_request,SignedHeaders=host,Signature={SIG}",
        f"AWS4-HMAC-SHA256 Credential=AKID,SignedHeaders=host,Signature={SIG}",
        f"AWS4-HMAC-SHA256 Credential=AKID/a/b/c/d/aws4_request,SignedHeaders=host,Signature={SIG}",
        "AWS AKIAIOSFODNN7EXAMPLE",  # SigV2 without ":signature"
        "AWS :signature",  # SigV2 without an access key
        "AWS AKIAIOSFODNN7EXAMPLE:",  # SigV2 without a signature
        "AWS ",
    ],
)
def test_malformed_authorization_headers(authorization: str) -> None:
    error = error_of({"authorization": authorization})
    assert (error.code, error.status) == ("AuthorizationHeaderMalformed", 400)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer abc", "Basic dXNlcjpwYXNz", "AWS4-ECDSA-P256-SHA256 Credential=x", "Digest x"],  # SigV4a included
)
def test_unsupported_authorization_schemes(authorization: str) -> None:
    error = error_of({"authorization": authorization})
    assert (error.code, error.status) == ("InvalidArgument", 400)
    assert error.extra.get("ArgumentName") == "Authorization"


@pytest.mark.parametrize(
    "query",
    [
        {"X-Amz-Credential": "AKID"},
        {"X-Amz-Credential": ""},
        {"X-Amz-Credential": "AKID/20130524/us-east-1/s3"},
        {"X-Amz-Credential": "/20130524/us-east-1/s3/aws4_request"},
        {"X-Amz-Credential": "AKID/20130524/us-east-1/s3/aws4_requests"},
        {"AWSAccessKeyId": ""},
    ],
)
def test_malformed_query_credentials(query: dict[str, str]) -> None:
    error = error_of({}, query)
    assert (error.code, error.status) == ("AuthorizationQueryParametersError", 400)
