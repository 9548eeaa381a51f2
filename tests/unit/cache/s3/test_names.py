"""Bucket-name rules (AWS general purpose bucket naming rules) and object-key rules (S3 + directory UFS)."""

from __future__ import annotations

import pytest

from cache.s3.errors import S3Error
from cache.s3.names import MAX_KEY_BYTES, bucket_name_error, check_bucket, check_key


@pytest.mark.parametrize(
    "name",
    [
        "abc",  # 3 characters: the minimum
        "a" * 63,  # the maximum
        "my-bucket",
        "my.bucket.name",
        "0bucket9",
        "123",
        "a-b-c",
        "a.b-c.d",
        "docexamplebucket1",
        "xn-bucket",  # only "xn--" is reserved
        "bucket-s3alia",
        "s3alias-bucket",
        "192.168.5",  # three numbers: not an IP address
        "192.168.5.4.5",
        "1.2.3.a",
        "sthree",
        "mrap.bucket",
    ],
)
def test_valid_bucket_names(name: str) -> None:
    assert bucket_name_error(name) is None
    check_bucket(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "ab",  # too short
        "a" * 64,  # too long
        "My-Bucket",  # upper case
        "my_bucket",  # underscore
        "my bucket",
        "-bucket",  # must begin with a letter or digit
        "bucket-",  # ... and end with one
        ".bucket",
        "bucket.",
        "my..bucket",  # adjacent periods
        "a..b",
        "192.168.5.4",  # formatted as an IP address
        "10.0.0.1",
        "999.999.999.999",
        "xn--bucket",  # reserved prefixes
        "sthree-bucket",
        "sthree-configurator-x",
        "amzn-s3-demo-bucket",
        "bucket-s3alias",  # reserved suffixes
        "bucket--ol-s3",
        "bucket.mrap",
        "bucket--x-s3",
        "bucket--table-s3",
        "bücket",
        "bucket/x",
    ],
)
def test_invalid_bucket_names(name: str) -> None:
    assert bucket_name_error(name)
    with pytest.raises(S3Error) as exc:
        check_bucket(name)
    assert (exc.value.code, exc.value.status) == ("InvalidBucketName", 400)
    assert exc.value.extra["BucketName"] == name


def key_of_bytes(total: int, char: str = "a") -> str:
    """A key of exactly total UTF-8 bytes, in "/"-separated segments short enough for any file system."""
    segment = char * (200 // len(char.encode()))
    key = segment
    while len((key + "/" + segment).encode()) <= total:
        key += "/" + segment
    pad = total - len(key.encode())
    key += "/" + "a" * (pad - 1) if pad >= 2 else "a" * pad
    assert len(key.encode()) == total
    return key


@pytest.mark.parametrize(
    "key",
    [
        "k",
        "a/b/c",
        "dir/",  # a trailing "/" names a "dir/" object
        "a/b/",
        "with space",
        "ünïcödé/键",
        "a-b_c.d~e!f'g(h)i*j",
        ".hidden",
        "...",  # not "." or ".."
        "..a",
        "a/.b/..c",
        ".s3cachex/y",  # only the exact ".s3cache" segment is reserved
        "x/.s3cache/y",  # ... and only at the top
        "%2F",
        key_of_bytes(MAX_KEY_BYTES),
        key_of_bytes(MAX_KEY_BYTES, "€"),
    ],
)
def test_valid_keys(key: str) -> None:
    check_key(key)


def test_the_limit_is_1024_bytes_of_utf8_not_characters() -> None:
    key = key_of_bytes(MAX_KEY_BYTES + 2, "€")  # 1026 bytes in fewer than 400 characters
    assert len(key) < 400
    with pytest.raises(S3Error) as exc:
        check_key(key)
    assert (exc.value.code, exc.value.status) == ("KeyTooLongError", 400)


def test_one_byte_over_is_too_long() -> None:
    assert MAX_KEY_BYTES == 1024
    with pytest.raises(S3Error) as exc:
        check_key(key_of_bytes(1025))
    assert exc.value.code == "KeyTooLongError"


@pytest.mark.parametrize(
    "key",
    [
        "",  # S3 requires a key
        "a\x00b",  # NUL
        "\x00",
        "/leading",
        "//x",
        "a//b",  # empty segment
        "a/./b",
        "a/../b",
        "../escape",
        "..",
        ".",
        "./",
        "../",
        "a/..",
        "a/../",
        "dir//",
        ".s3cache/meta/x",  # the reserved system directory
        ".s3cache",
        ".s3cache/",
        "a" * 256,  # a single path segment longer than NAME_MAX
    ],
)
def test_refused_keys(key: str) -> None:
    with pytest.raises(S3Error) as exc:
        check_key(key)
    assert (exc.value.code, exc.value.status) == ("InvalidArgument", 400)


def test_segment_of_255_bytes_is_fine() -> None:
    check_key("a" * 255)
    check_key("é" * 127 + "a")
