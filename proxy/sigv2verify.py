"""Verified SigV2: an ``Authorization: AWS <key>:<signature>`` header or a presigned URL's ``Signature``, checked.

S3's string to sign is the method, Content-MD5, Content-Type, the date (the ``Date`` header, empty when an
``x-amz-date`` header is sent, the ``Expires`` parameter of a presigned URL), the ``x-amz-*`` headers
(``name:value`` lines in name order) and the resource: the path as sent plus the sub-resources S3 signs,
sorted. The signature is base64 of its HMAC-SHA1 under the user's secret, compared in constant time.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import hmac
from collections.abc import Callable, Mapping
from urllib.parse import unquote

from cache.s3.errors import S3Error
from proxy.sigv4verify import check_time, unknown_key

# The query parameters S3 signs as part of the resource (AWS's list; any other parameter is left out).
SUBRESOURCES = frozenset({
    "accelerate", "acl", "analytics", "cors", "delete", "inventory", "lifecycle", "location", "logging", "metrics",
    "notification", "object-lock", "partNumber", "policy", "replication", "requestPayment", "restore", "select",
    "select-type", "storageClass", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning", "versions",
    "website", "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires",
})
NOT_SUPPORTED = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
_NO_DATE = "AWS authentication requires a valid Date or x-amz-date header"


def is_sigv2(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    return headers.get("authorization", "").startswith("AWS ") or \
        ("authorization" not in headers and "AWSAccessKeyId" in query)


def string_to_sign(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], date_line: str) -> str:
    amz = sorted((name, value.strip()) for name, value in headers.items() if name.startswith("x-amz-"))
    signed = sorted((name, unquote(value)) for name, _, value in (pair.partition("=") for pair in raw_query.split("&"))
                    if name in SUBRESOURCES)
    resource = raw_path + ("?" + "&".join(f"{name}={value}" if value else name for name, value in signed)
                           if signed else "")
    lines = [method, headers.get("content-md5", "").strip(), headers.get("content-type", "").strip(), date_line]
    return "\n".join(lines + [f"{name}:{value}" for name, value in amz] + [resource])


def _request_time(headers: Mapping[str, str]) -> datetime.datetime:
    text = headers.get("x-amz-date") or headers.get("date")
    try:
        moment = email.utils.parsedate_to_datetime(text) if text else None
    except (TypeError, ValueError):
        moment = None
    if moment is None:
        raise S3Error("AccessDenied", _NO_DATE)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def verify_v2(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], query: Mapping[str, str],
              secret_of: Callable[[str], str | None], max_skew_s: float,
              now: datetime.datetime | None = None) -> str:
    """The verified access key of a SigV2 request (its presigned time is judged before, in every mode)."""
    authorization = headers.get("authorization")
    if authorization is not None:
        user, _, offered = authorization[len("AWS "):].partition(":")
        user = user.strip()
        check_time(_request_time(headers), now or datetime.datetime.now(datetime.UTC), max_skew_s)
        date_line = "" if "x-amz-date" in headers else headers.get("date", "").strip()
    else:
        user, offered, date_line = query.get("AWSAccessKeyId", ""), query.get("Signature", ""), query.get("Expires", "")
    secret = secret_of(user)
    if secret is None:
        raise unknown_key(user)
    given = offered.strip().encode("latin-1", "replace")
    # A bucket alone is signed as "/bucket" or, as botocore signs it (the virtual-hosted form), "/bucket/".
    paths = (raw_path, raw_path + "/") if raw_path.count("/") == 1 and len(raw_path) > 1 else (raw_path,)
    texts = [string_to_sign(method, path, raw_query, headers, date_line) for path in paths]
    if not any(hmac.compare_digest(base64.b64encode(hmac.digest(secret.encode(), text.encode(), "sha1")), given)
               for text in texts):
        text = texts[0]
        raise S3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the signature "
                      "you provided. Check your key and signing method.",
                      extra={"AWSAccessKeyId": user, "StringToSign": text, "SignatureProvided": offered[:64]})
    return user
