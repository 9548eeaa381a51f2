"""Bucket-name and object-key rules: S3's own, plus what a directory under storage cannot hold.

Pure functions; every refusal is an S3Error a client can read.
"""

from __future__ import annotations

import re

from cache.s3.errors import S3Error, invalid_argument

MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255  # NAME_MAX of the file systems a directory UFS lives on
RESERVED_DIR = ".s3cache"  # per-bucket system directory of a directory UFS: metadata, staging

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def bucket_name_error(name: str) -> str | None:
    """Why a name is not a valid S3 bucket name (AWS's general-purpose bucket rules), or None."""
    if not _BUCKET_RE.match(name):
        return "Bucket names must be 3-63 characters of lower-case letters, digits, dots and hyphens, " \
               "beginning and ending with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "Bucket names must not contain two adjacent periods or a period next to a hyphen"
    if _IP_RE.match(name):
        return "Bucket names must not be formatted as an IP address"
    if name.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or \
            name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")):
        return "Bucket names must not use a reserved prefix or suffix"
    return None


def check_bucket(name: str) -> None:
    reason = bucket_name_error(name)
    if reason:
        raise S3Error("InvalidBucketName", reason, extra={"BucketName": name})


def check_key(key: str) -> None:
    """Refuse keys S3 refuses, and keys that could not stay inside a bucket's directory."""
    if not key:
        raise invalid_argument("Object key must not be empty", "key", key)
    encoded = key.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", extra={"MaxSizeAllowed": str(MAX_KEY_BYTES), "Size": str(len(encoded))})
    if "\x00" in key:
        raise invalid_argument("Object key must not contain NUL", "key", key.replace("\x00", "\\0"))
    if key.startswith("/"):
        raise invalid_argument("Object key must not begin with '/' on a directory under storage", "key", key)
    segments = key.split("/")
    if segments[-1] == "":  # a "dir/" marker: its last segment is empty by design
        segments.pop()
    for segment in segments:
        if segment in ("", ".", ".."):
            raise invalid_argument(
                "Object key must not contain empty, '.' or '..' path segments on a directory under storage",
                "key", key)
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            raise invalid_argument(
                f"Each '/'-separated part of an object key must be at most {MAX_SEGMENT_BYTES} bytes",
                "key", key)
    if segments[0] == RESERVED_DIR:
        raise invalid_argument(f"Object keys beginning with '{RESERVED_DIR}/' are reserved", "key", key)
