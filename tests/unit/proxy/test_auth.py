"""Who the caller is, from every S3 credential form (SigV4/SigV2, header/query), and malformed forms; presigned URLs
past their time, in every mode."""

from __future__ import annotations

import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cache.s3.errors import S3Error
from conf.settings import AuthSettings
from proxy.auth import authenticate, check_expiry, user_of
from proxy.sigv4verify import presigned_window, verify

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


# ---- presigned URLs past their time (every mode: this needs no secret) ---------------------------------------

NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
SIGNED_AT = "20260301T115900Z"  # a minute before NOW


def v4_query(expires: str = "300", date: str = SIGNED_AT, **more: str) -> dict[str, str]:
    return {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": "alice/20260301/us-east-1/s3/aws4_request",
            "X-Amz-Date": date, "X-Amz-Expires": expires, "X-Amz-SignedHeaders": "host", "X-Amz-Signature": SIG,
            **more}


def expiry_error(query: dict[str, str], now: datetime.datetime = NOW) -> S3Error:
    with pytest.raises(S3Error) as exc:
        check_expiry(query, now)
    return exc.value


def test_a_presigned_url_inside_its_window_passes() -> None:
    check_expiry(v4_query("300"), NOW)
    check_expiry(v4_query("60"), NOW)  # exactly at X-Amz-Date + X-Amz-Expires: still valid
    assert presigned_window(v4_query("604800"), NOW) == (NOW - datetime.timedelta(seconds=60), 604800)
    check_expiry({}, NOW)  # not presigned: nothing to judge
    check_expiry({"AWSAccessKeyId": "alice", "Expires": str(int(NOW.timestamp()) + 1), "Signature": "x"}, NOW)


def test_an_expired_sigv4_presigned_url_is_access_denied_as_s3_says() -> None:
    error = expiry_error(v4_query("59"))
    assert (error.code, error.status, error.message) == ("AccessDenied", 403, "Request has expired")
    assert error.extra == {"X-Amz-Expires": "59", "Expires": "2026-03-01T11:59:59Z", "ServerTime": "2026-03-01T12:00:00Z"}
    assert list(error.extra) == ["X-Amz-Expires", "Expires", "ServerTime"]  # S3's order in the error XML


@pytest.mark.parametrize(("expires", "message"), [
    ("604801", "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
    ("99999999999999999999", "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
    ("abc", "X-Amz-Expires should be a number"),
    ("1.5", "X-Amz-Expires should be a number"),
    ("", "X-Amz-Expires should be a number"),
    ("+5", "X-Amz-Expires should be a number"),
    ("5_0", "X-Amz-Expires should be a number"),
    ("-1", "X-Amz-Expires must be non-negative"),
])
def test_bad_x_amz_expires_is_a_query_parameters_error(expires: str, message: str) -> None:
    error = expiry_error(v4_query(expires))
    assert (error.code, error.status, error.message) == ("AuthorizationQueryParametersError", 400, message)


def test_a_week_is_judged_before_the_time() -> None:  # long expired and over a week: the week is what S3 names
    error = expiry_error(v4_query("604801", date="20000101T000000Z"))
    assert error.code == "AuthorizationQueryParametersError"


@pytest.mark.parametrize("query", [
    {k: v for k, v in v4_query().items() if k != "X-Amz-Date"},
    {k: v for k, v in v4_query().items() if k != "X-Amz-Expires"},
    v4_query(date="2026-03-01T11:59:00Z"),
    v4_query(date="yesterday"),
])
def test_missing_or_malformed_presigned_time(query: dict[str, str]) -> None:
    error = expiry_error(query)
    assert (error.code, error.status) == ("AuthorizationQueryParametersError", 400)


def test_an_expired_sigv2_presigned_url_is_access_denied() -> None:
    expires = int(NOW.timestamp()) - 1
    error = expiry_error({"AWSAccessKeyId": "alice", "Expires": str(expires), "Signature": "x"})
    assert (error.code, error.status, error.message) == ("AccessDenied", 403, "Request has expired")
    assert error.extra == {"Expires": "2026-03-01T11:59:59Z", "ServerTime": "2026-03-01T12:00:00Z"}


@pytest.mark.parametrize("query", [
    {"AWSAccessKeyId": "alice", "Signature": "x"},  # no Expires
    {"AWSAccessKeyId": "alice", "Expires": "tomorrow", "Signature": "x"},
    {"AWSAccessKeyId": "alice", "Expires": "-5", "Signature": "x"},
])
def test_sigv2_presigned_without_a_usable_expires(query: dict[str, str]) -> None:
    error = expiry_error(query)
    assert (error.code, error.status) == ("AccessDenied", 403)


def settings_of(**auth: object) -> AuthSettings:
    return AuthSettings.model_validate(auth)


def test_simple_mode_refuses_an_expired_presigned_url() -> None:
    query = v4_query("1", date="20200101T000000Z")
    with pytest.raises(S3Error) as exc:
        authenticate(settings_of(), "GET", "/b/k", urlencode(query), {"host": "localhost"}, query)
    assert (exc.value.code, exc.value.message) == ("AccessDenied", "Request has expired")
    query = v4_query("604801")
    with pytest.raises(S3Error) as exc:
        authenticate(settings_of(), "GET", "/b/k", urlencode(query), {"host": "localhost"}, query)
    assert exc.value.code == "AuthorizationQueryParametersError"
    fresh = v4_query("300", date=datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ"))
    assert authenticate(settings_of(), "GET", "/b/k", urlencode(fresh), {"host": "localhost"}, fresh).user == "alice"


def presigned_by_botocore(expires_s: int, user: str = "alice", secret: str = "her-secret") -> tuple[str, str]:
    """A real SigV4 presigned GET of /b/k, as boto3 makes it: (raw path, raw query)."""
    request = AWSRequest(method="GET", url="http://localhost:29998/b/k")
    S3SigV4QueryAuth(Credentials(user, secret), "s3", "us-east-1", expires=expires_s).add_auth(request)
    split = urlsplit(request.url)
    return split.path, split.query


def test_sigv4_mode_verifies_a_presigned_url_inside_its_window_only() -> None:
    path, raw_query = presigned_by_botocore(60)
    query = dict(parse_qsl(raw_query))
    headers = {"host": "localhost:29998"}
    settings = settings_of(mode="sigv4", users={"alice": "her-secret"})
    assert authenticate(settings, "GET", path, raw_query, headers, query).user == "alice"
    signed_at = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    assert verify("GET", path, raw_query, headers, {"alice": "her-secret"}.get,
                  now=signed_at + datetime.timedelta(seconds=60)).user == "alice"
    with pytest.raises(S3Error) as exc:
        verify("GET", path, raw_query, headers, {"alice": "her-secret"}.get,
               now=signed_at + datetime.timedelta(seconds=61))
    assert (exc.value.code, exc.value.message) == ("AccessDenied", "Request has expired")
    assert exc.value.extra["X-Amz-Expires"] == "60"
    # Over a week is refused before the signature is even computed, as S3 does.
    long_query = raw_query.replace("X-Amz-Expires=60", "X-Amz-Expires=604801")
    with pytest.raises(S3Error) as exc:
        authenticate(settings, "GET", path, long_query, headers, dict(parse_qsl(long_query)))
    assert (exc.value.code, exc.value.status) == ("AuthorizationQueryParametersError", 400)
