"""Verified SigV4: the signature of a request (header or presigned URL) checked against the user's secret.

The request is signed again with awscrt, the same signer s3cache uses toward origins, from exactly what the
client signed (its SignedHeaders, its X-Amz-Date, its payload hash) and the secret configured for its access
key; the two signatures are compared in constant time. A signed ``aws-chunked`` body's seed signature is
checked here, and the chain its chunk and trailer signatures continue is handed on (proxy.chunksig) for the body
reader to check as the chunks arrive.
"""

from __future__ import annotations

import datetime
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from awscrt import auth
from awscrt import http as crt_http

from cache.s3.errors import S3Error
from proxy.chunksig import SIGNED_STREAMING, ChunkChain, signing_key

ALGORITHM = "AWS4-HMAC-SHA256"
_ADDED_BY_SIGNER = ("x-amz-date", "x-amz-content-sha256", "authorization")
_QUERY_AUTH = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
               "X-Amz-Signature", "X-Amz-Security-Token")
SecretOf = Callable[[str], str | None]
_INTEGER = re.compile(r"-?[0-9]+")
MAX_EXPIRES_S = 604800  # a presigned URL lives a week at most
_QUERY_REQUIRED = ("Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                   "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")


@dataclass(frozen=True)
class Caller:
    """Who a request is from (None: anonymous) and, for a signed aws-chunked body, the chain its chunks continue."""

    user: str | None
    chain: ChunkChain | None = None


def _date(text: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise S3Error("AccessDenied", "X-Amz-Date is missing or not of the form YYYYMMDDTHHMMSSZ") from None


def iso8601(moment: datetime.datetime) -> str:
    """The form S3 writes times in its error XML: ``2026-01-01T00:00:00Z``."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def presigned_window(query: Mapping[str, str], now: datetime.datetime) -> tuple[datetime.datetime, int]:
    """A SigV4 presigned URL's X-Amz-Date and X-Amz-Expires, judged as S3 judges them: 400
    AuthorizationQueryParametersError for a missing, malformed or over-a-week value, 403 AccessDenied "Request has
    expired" (with X-Amz-Expires, Expires and ServerTime, as S3 sends them) past the date plus the expiry. Needs
    no secret, so SIMPLE mode checks it too."""
    text, date_text = query.get("X-Amz-Expires"), query.get("X-Amz-Date")
    if text is None or date_text is None:
        raise S3Error("AuthorizationQueryParametersError", _QUERY_REQUIRED)
    if not _INTEGER.fullmatch(text):
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires should be a number")
    digits = text.lstrip("-").lstrip("0") or "0"  # int() refuses past 4300 digits; past 18 it is past a week anyway
    expires = (int(digits) if len(digits) <= 18 else MAX_EXPIRES_S + 1) * (-1 if text.startswith("-") else 1)
    if expires < 0:
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative")
    if expires > MAX_EXPIRES_S:
        raise S3Error("AuthorizationQueryParametersError",
                      f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES_S}")
    try:
        date = datetime.datetime.strptime(date_text, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise S3Error("AuthorizationQueryParametersError",
                      "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"") from None
    deadline = date + datetime.timedelta(seconds=expires)
    if now > deadline:
        raise S3Error("AccessDenied", "Request has expired", extra={
            "X-Amz-Expires": str(expires), "Expires": iso8601(deadline), "ServerTime": iso8601(now)})
    return date, expires


def _config(access_key: str, secret: str, scope: list[str], date: datetime.datetime, body: str, header_body: bool,
            query: bool, expires_s: int | None) -> auth.AwsSigningConfig:
    return auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS if query
        else auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(access_key, secret),
        region=scope[2], service=scope[3], date=date, expiration_in_seconds=expires_s,
        use_double_uri_encode=False, should_normalize_uri_path=False, signed_body_value=body,
        signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256 if header_body
        else auth.AwsSignedBodyHeaderType.NONE,
    )


def unknown_key(access_key: str) -> S3Error:
    return S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access_key[:128]})


def _secret(secret_of: SecretOf, access_key: str) -> str:
    secret = secret_of(access_key)
    if secret is None:
        raise unknown_key(access_key)
    return secret


def check_time(date: datetime.datetime, now: datetime.datetime, max_skew_s: float) -> None:
    """RequestTimeTooSkewed past the allowed skew, with the elements S3 sends."""
    if abs((now - date).total_seconds()) > max_skew_s:
        raise S3Error("RequestTimeTooSkewed", extra={
            "RequestTime": iso8601(date), "ServerTime": iso8601(now),
            "MaxAllowedSkewMilliseconds": str(int(max_skew_s * 1000))})


def verify(
    method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], secret_of: SecretOf,
    max_skew_s: float = 900.0, now: datetime.datetime | None = None,
) -> Caller:
    """The verified access key of a SigV4 request; S3Error (403) when it is not signed right."""
    now = now or datetime.datetime.now(datetime.UTC)
    authorization = headers.get("authorization", "")
    if authorization.startswith(ALGORITHM):
        fields = dict(part.strip().split("=", 1) for part in authorization[len(ALGORITHM):].split(",") if "=" in part)
        scope = fields.get("Credential", "").split("/")
        if len(scope) != 5 or "SignedHeaders" not in fields or "Signature" not in fields:
            raise S3Error("AuthorizationHeaderMalformed")
        signed = fields["SignedHeaders"].split(";")
        date = _date(headers.get("x-amz-date", ""))
        check_time(date, now, max_skew_s)
        body = headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        kept = [(name, headers.get(name, "")) for name in signed if name not in _ADDED_BY_SIGNER]
        path = raw_path + (f"?{raw_query}" if raw_query else "")
        secret = _secret(secret_of, scope[0])
        config = _config(scope[0], secret, scope, date, body,
                         "x-amz-content-sha256" in signed, query=False, expires_s=None)
        request = crt_http.HttpRequest(method, path, headers=crt_http.HttpHeaders(kept))
        auth.aws_sign_request(request, config).result()
        expected = dict(request.headers)["Authorization"].rsplit("Signature=", 1)[1]
        offered = fields["Signature"]
    elif "X-Amz-Signature=" in raw_query:
        params = parse_qsl(raw_query, keep_blank_values=True)
        q = dict(params)
        scope = q.get("X-Amz-Credential", "").split("/")
        if len(scope) != 5 or q.get("X-Amz-Algorithm") != ALGORITHM:
            raise S3Error("AuthorizationQueryParametersError")
        date, expires = presigned_window(q, now)
        check_time(date, now, max_skew_s + expires)
        rest = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in params if k not in _QUERY_AUTH)
        signed = q.get("X-Amz-SignedHeaders", "host").split(";")
        kept = [(name, headers.get(name, "")) for name in signed if name not in _ADDED_BY_SIGNER]
        config = _config(scope[0], _secret(secret_of, scope[0]), scope, date, "UNSIGNED-PAYLOAD", False, query=True,
                         expires_s=expires)
        request = crt_http.HttpRequest(method, raw_path + (f"?{rest}" if rest else ""),
                                       headers=crt_http.HttpHeaders(kept))
        auth.aws_sign_request(request, config).result()
        signed_query = dict(parse_qsl(request.path.partition("?")[2], keep_blank_values=True))
        expected, offered = signed_query["X-Amz-Signature"], q["X-Amz-Signature"]
    else:
        raise S3Error("AccessDenied", "Access Denied: this endpoint requires SigV4-signed requests")
    if not hmac.compare_digest(expected, offered):
        raise S3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the signature "
                      "you provided. Check your key and signing method.",
                      extra={"AWSAccessKeyId": scope[0], "SignatureProvided": offered[:64]})
    if authorization and body in SIGNED_STREAMING:
        chain = ChunkChain(signing_key(secret, *scope[1:4]), headers["x-amz-date"], "/".join(scope[1:]), offered,
                           SIGNED_STREAMING[body])
        return Caller(scope[0], chain)
    return Caller(scope[0])
