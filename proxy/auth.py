"""Who is calling, under the configured mode: ``simple``, ``sigv4`` or ``oidc``.

SIMPLE: who the caller says they are, read from any S3 credential form, unverified. The access key is the
user: from a SigV4 ``Authorization`` header (``Credential=<user>/...``), a SigV4 presigned URL
(``X-Amz-Credential``), a SigV2 header (``AWS <user>:<signature>``) or a SigV2 presigned URL
(``AWSAccessKeyId``). No credentials at all is the anonymous user (None). Signatures are not checked in this
mode: it names users for access rules and logs, as Alluxio's SIMPLE mode does.

SIGV4 verifies signatures (proxy.sigv4verify; SigV2's in proxy.sigv2verify, refused in every mode when
``sigv2 = false``); OIDC verifies a JWT carried as a Bearer token or as the SigV4
session token (proxy.oidc) and judges requests without one as SIGV4 does. In every mode a presigned URL past its
time is refused first.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping

from cache.s3.errors import S3Error
from conf.settings import AuthSettings
from proxy.oidc import Verifier, verifier
from proxy.oidc import denied as oidc_denied
from proxy.sigv2verify import NOT_SUPPORTED, is_sigv2, verify_v2
from proxy.sigv4verify import Caller, iso8601, presigned_window, verify

_SIGV4 = "AWS4-HMAC-SHA256"
_SIGV2 = "AWS "
_BEARER = "bearer"


def _malformed(message: str) -> S3Error:
    return S3Error("AuthorizationHeaderMalformed", message)


def _access_key_of_credential(credential: str) -> str | None:
    """``AKID/20260101/us-east-1/s3/aws4_request`` -> ``AKID``; None when not of that shape."""
    parts = credential.strip().split("/")
    if len(parts) != 5 or not parts[0] or parts[4] != "aws4_request":
        return None
    return parts[0]


def user_of(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization is not None:
        if authorization.startswith(_SIGV4):
            fields = {}
            for item in authorization[len(_SIGV4):].split(","):
                name, sep, value = item.strip().partition("=")
                if sep:
                    fields[name] = value
            if "Credential" not in fields or "Signature" not in fields:
                raise _malformed("The authorization header is malformed; it must name a Credential and a Signature.")
            user = _access_key_of_credential(fields["Credential"])
            if user is None:
                raise _malformed("The authorization header is malformed; the Credential is mal-formed; expecting "
                                 '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
            return user
        if authorization.startswith(_SIGV2):
            user, sep, signature = authorization[len(_SIGV2):].partition(":")
            if not sep or not user.strip() or not signature:
                raise _malformed("The authorization header is malformed; expecting \"AWS <AccessKeyId>:<Signature>\".")
            return user.strip()
        raise S3Error("InvalidArgument", "Unsupported Authorization Type",
                      extra={"ArgumentName": "Authorization", "ArgumentValue": authorization[:40]})
    credential = query.get("X-Amz-Credential")
    if credential is not None:
        user = _access_key_of_credential(credential)
        if user is None:
            raise S3Error("AuthorizationQueryParametersError",
                          "X-Amz-Credential must be of the form <AKID>/YYYYMMDD/REGION/SERVICE/aws4_request")
        return user
    access_key = query.get("AWSAccessKeyId")
    if access_key is not None:
        if not access_key:
            raise S3Error("AuthorizationQueryParametersError", "AWSAccessKeyId must not be empty")
        return access_key
    return None


def token_of(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The OIDC token a request carries: ``Authorization: Bearer <jwt>``, else the SigV4 session token
    (``X-Amz-Security-Token`` header or query parameter; SigV2 presigning spells the parameter in lower case)."""
    scheme, _, rest = headers.get("authorization", "").partition(" ")
    if scheme.lower() == _BEARER:
        if not rest.strip():
            raise oidc_denied("the Bearer token is empty")
        return rest.strip()
    return headers.get("x-amz-security-token") or query.get("X-Amz-Security-Token") or \
        query.get("x-amz-security-token") or None


def oidc_verifier(settings: AuthSettings) -> Verifier:
    """The worker's one verifier for these settings (its JWKS is read on first use and kept)."""
    assert settings.oidc_jwks and settings.oidc_issuer and settings.oidc_audience  # settings refuse oidc without them
    return verifier(settings.oidc_jwks, settings.oidc_issuer, settings.oidc_audience, settings.oidc_leeway_s,
                    settings.oidc_user_claim, settings.oidc_groups_claim, settings.oidc_jwks_refresh_s,
                    settings.oidc_jwks_min_refresh_s, settings.oidc_jwks_timeout_s)


def check_expiry(query: Mapping[str, str], now: datetime.datetime | None = None) -> None:
    """A presigned URL past its time is refused in every mode, SIMPLE included (this needs no secret): SigV4's
    X-Amz-Date + X-Amz-Expires (at most a week), SigV2's Expires (seconds since the epoch)."""
    if "X-Amz-Credential" in query or "X-Amz-Signature" in query:
        presigned_window(query, now or datetime.datetime.now(datetime.UTC))
    elif "AWSAccessKeyId" in query:
        text = query.get("Expires")
        if text is None:
            raise S3Error("AccessDenied", "Query-string authentication requires the Signature, Expires and "
                          "AWSAccessKeyId parameters")
        if not text.isascii() or not text.isdigit():
            raise S3Error("AccessDenied", f"Invalid date (should be seconds since epoch): {text[:40]}")
        now = now or datetime.datetime.now(datetime.UTC)
        digits = text.lstrip("0") or "0"  # int() refuses past 4300 digits: a time that far ahead has not come
        if len(digits) <= 18 and now.timestamp() > int(digits):
            raise S3Error("AccessDenied", "Request has expired", extra={
                "Expires": iso8601(datetime.datetime.fromtimestamp(int(digits), datetime.UTC)),
                "ServerTime": iso8601(now)})


def authenticate(settings: AuthSettings, method: str, raw_path: str, raw_query: str,
                 headers: Mapping[str, str], query: Mapping[str, str]) -> Caller:
    """The request's user under the configured mode (the one place the mode is decided)."""
    check_expiry(query)
    sigv2 = is_sigv2(headers, query)
    if sigv2 and not settings.sigv2:
        raise S3Error("InvalidRequest", NOT_SUPPORTED)
    if settings.mode == "simple":
        return Caller(user_of(headers, query))
    unsigned = "authorization" not in headers and "X-Amz-Signature" not in query and not sigv2
    if settings.mode == "oidc":
        token = token_of(headers, query)
        if token is not None:
            return Caller(oidc_verifier(settings).verify(token))
        if unsigned and not settings.anonymous:
            raise S3Error("AccessDenied", "Access Denied: this endpoint requires an OIDC token (Authorization: "
                          "Bearer, or the SigV4 session token)")
    if settings.anonymous and unsigned:
        return Caller(None)
    if sigv2:
        user_of(headers, query)  # a malformed SigV2 header is AuthorizationHeaderMalformed, as in every mode
        return Caller(verify_v2(method, raw_path, raw_query, headers, query, settings.users.get,
                                settings.max_skew_s))
    return verify(method, raw_path, raw_query, headers, settings.users.get, settings.max_skew_s)
