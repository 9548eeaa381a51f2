"""Listings through a real worker: ListObjects v1 and v2, ListObjectVersions, paging, delimiters, dir markers."""

from __future__ import annotations

import hashlib
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote_plus

import httpx
import pytest
from botocore.exceptions import ClientError

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=tester/20260101/us-east-1/s3/aws4_request, "
                         "SignedHeaders=host, Signature=0"}
EMPTY_ETAG = f'"{hashlib.md5(b"").hexdigest()}"'

# Keys whose S3 (byte-wise) order differs from naive directory order: '!' < '-' < '.' < '/' < '0' < '~'.
ORDER_KEYS = ["a!", "a-b", "a.txt", "a/b", "a/c/d", "a0", "a~", "b"]


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def _put(s3, bucket: str, keys: list[str]) -> None:  # type: ignore[no-untyped-def]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") else key.encode())


def _raw(worker, bucket: str, params: dict[str, str]) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.get(f"{worker.url}/{bucket}", params=params, headers=AUTH)


def _root(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)
    for node in root.iter():
        node.tag = node.tag.removeprefix(NS)
    return root


def _keys(listing: dict) -> list[str]:  # type: ignore[type-arg]
    return [item["Key"] for item in listing.get("Contents", [])]


def _prefixes(listing: dict) -> list[str]:  # type: ignore[type-arg]
    return [item["Prefix"] for item in listing.get("CommonPrefixes", [])]


def _error_code(response: httpx.Response) -> str:
    root = ET.fromstring(response.content)
    assert root.tag == "Error"
    return root.findtext("Code") or ""


# ---- ListObjects (v1) ----------------------------------------------------------------------------


def test_list_objects_v1_prefix_delimiter_marker(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    _put(s3, bucket, ["a/1", "a/2", "a/sub/3", "b/1", "c", "d"])
    everything = s3.list_objects(Bucket=bucket)
    assert _keys(everything) == ["a/1", "a/2", "a/sub/3", "b/1", "c", "d"]
    assert everything["IsTruncated"] is False
    assert everything["MaxKeys"] == 1000
    assert all(item["Owner"]["ID"] for item in everything["Contents"])
    assert [item["Size"] for item in everything["Contents"]] == [3, 3, 7, 3, 1, 1]
    assert everything["Contents"][0]["ETag"] == f'"{hashlib.md5(b"a/1").hexdigest()}"'
    assert everything["Contents"][0]["StorageClass"] == "STANDARD"

    top = s3.list_objects(Bucket=bucket, Delimiter="/")
    assert _keys(top) == ["c", "d"]
    assert _prefixes(top) == ["a/", "b/"]
    assert top["Delimiter"] == "/"

    under_a = s3.list_objects(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert _keys(under_a) == ["a/1", "a/2"]
    assert _prefixes(under_a) == ["a/sub/"]
    assert under_a["Prefix"] == "a/"

    after = s3.list_objects(Bucket=bucket, Marker="a/2")
    assert _keys(after) == ["a/sub/3", "b/1", "c", "d"]
    assert after["Marker"] == "a/2"
    after_missing = s3.list_objects(Bucket=bucket, Marker="a/1x")
    assert _keys(after_missing) == ["a/2", "a/sub/3", "b/1", "c", "d"]

    page = s3.list_objects(Bucket=bucket, MaxKeys=2)
    assert _keys(page) == ["a/1", "a/2"]
    assert page["IsTruncated"] is True
    assert page["MaxKeys"] == 2

    delimited = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=1)
    assert _prefixes(delimited) == ["a/"] and _keys(delimited) == []
    assert delimited["IsTruncated"] is True
    assert delimited["NextMarker"] == "a/"
    second = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2, Marker=delimited["NextMarker"])
    assert _prefixes(second) == ["b/"] and _keys(second) == ["c"]
    assert second["NextMarker"] == "c"
    third = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2, Marker=second["NextMarker"])
    assert _keys(third) == ["d"] and _prefixes(third) == []
    assert third["IsTruncated"] is False
    assert "NextMarker" not in third


def test_list_objects_v1_raw_xml_and_encoding(s3, bucket: str, worker) -> None:  # type: ignore[no-untyped-def]
    keys = ["sp ace/a b", "sp ace/x&y<z>", "sp ace/z"]
    _put(s3, bucket, keys)
    plain = _root(_raw(worker, bucket, {"prefix": "sp ace/", "marker": "sp ace/a b", "max-keys": "1"}))
    assert plain.tag == "ListBucketResult"
    assert plain.findtext("Name") == bucket
    assert plain.findtext("Prefix") == "sp ace/"
    assert plain.findtext("Marker") == "sp ace/a b"
    assert plain.findtext("MaxKeys") == "1"
    assert plain.findtext("IsTruncated") == "true"
    assert [c.findtext("Key") for c in plain.findall("Contents")] == ["sp ace/x&y<z>"]
    assert plain.find("EncodingType") is None

    encoded = _root(_raw(worker, bucket, {"prefix": "sp ace/", "delimiter": "/", "marker": "sp ace/a b",
                                           "max-keys": "1", "encoding-type": "url"}))
    assert encoded.findtext("EncodingType") == "url"
    for name in ("Marker", "NextMarker"):  # encoded in v1; the Prefix echo is not (boto3 decodes it in v2 only)
        text = encoded.findtext(name) or ""
        assert " " not in text, (name, text)
    assert encoded.findtext("Prefix") == "sp ace/"
    assert unquote_plus(encoded.findtext("Marker") or "") == "sp ace/a b"
    key_text = encoded.find("Contents/Key")
    assert key_text is not None and key_text.text is not None
    assert "&" not in key_text.text and "<" not in key_text.text and " " not in key_text.text
    assert unquote_plus(key_text.text) == "sp ace/x&y<z>"
    assert unquote_plus(encoded.findtext("NextMarker") or "") == "sp ace/x&y<z>"

    via_boto = s3.list_objects(Bucket=bucket, Prefix="sp ace/", Marker="sp ace/a b")  # boto3 encodes and decodes
    assert _keys(via_boto) == ["sp ace/x&y<z>", "sp ace/z"]
    assert via_boto["Marker"] == "sp ace/a b"


# ---- ListObjectsV2 -------------------------------------------------------------------------------


def test_list_objects_v2_continuation_returns_every_key_once(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    keys = [f"k{i:02d}" for i in range(20)] + ["dir/x1", "dir/x2", "dir/sub/y", "z-last", "z/last"]
    _put(s3, bucket, keys)
    seen: list[str] = []
    pages = 0
    token = None
    while True:
        kwargs = {"Bucket": bucket, "MaxKeys": 7}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        pages += 1
        assert page["KeyCount"] == len(page.get("Contents", []))
        assert page["MaxKeys"] == 7
        if token:
            assert page["ContinuationToken"] == token
        seen += _keys(page)
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        assert page["KeyCount"] == 7
        token = page["NextContinuationToken"]
        assert pages < 10
    assert pages == 4
    assert seen == sorted(keys)
    assert len(seen) == 25


def test_list_objects_v2_start_after_key_count_fetch_owner(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    _put(s3, bucket, ["k1", "k2", "k3", "p/a", "p/b", "q/a"])
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="k2")
    assert _keys(after) == ["k3", "p/a", "p/b", "q/a"]
    assert after["StartAfter"] == "k2"
    assert after["KeyCount"] == 4
    between = s3.list_objects_v2(Bucket=bucket, StartAfter="k25")  # need not exist
    assert _keys(between) == ["k3", "p/a", "p/b", "q/a"]
    into_dir = s3.list_objects_v2(Bucket=bucket, StartAfter="p/a")
    assert _keys(into_dir) == ["p/b", "q/a"]

    delimited = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert _keys(delimited) == ["k1", "k2", "k3"]
    assert _prefixes(delimited) == ["p/", "q/"]
    assert delimited["KeyCount"] == 5

    # A continuation token wins over start-after.
    first = s3.list_objects_v2(Bucket=bucket, MaxKeys=2, StartAfter="k1")
    assert _keys(first) == ["k2", "k3"]
    rest = s3.list_objects_v2(Bucket=bucket, StartAfter="k1", ContinuationToken=first["NextContinuationToken"])
    assert _keys(rest) == ["p/a", "p/b", "q/a"]

    without_owner = s3.list_objects_v2(Bucket=bucket)
    assert all("Owner" not in item for item in without_owner["Contents"])
    with_owner = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)
    assert all(item["Owner"]["ID"] for item in with_owner["Contents"])


SPECIAL_KEYS = ["a b/c d.txt", "plus+sign", "percent%41%", "données/ß/日本.txt", "amp&lt;", "tilde~star*", "q?x#y"]


def test_list_objects_v2_encoding_type_url(s3, bucket: str, worker) -> None:  # type: ignore[no-untyped-def]
    _put(s3, bucket, SPECIAL_KEYS)
    via_boto = s3.list_objects_v2(Bucket=bucket)
    assert _keys(via_boto) == sorted(SPECIAL_KEYS)

    root = _root(_raw(worker, bucket, {"list-type": "2", "encoding-type": "url"}))
    assert root.findtext("EncodingType") == "url"
    assert root.findtext("KeyCount") == str(len(SPECIAL_KEYS))
    raw_keys = [c.findtext("Key") or "" for c in root.findall("Contents")]
    for text in raw_keys:
        assert text.isascii() and " " not in text, text
        assert "#" not in text and "?" not in text and "&" not in text
    assert [unquote_plus(text) for text in raw_keys] == sorted(SPECIAL_KEYS)

    unencoded = _root(_raw(worker, bucket, {"list-type": "2"}))
    assert unencoded.find("EncodingType") is None
    assert [c.findtext("Key") for c in unencoded.findall("Contents")] == sorted(SPECIAL_KEYS)

    prefixed = _root(_raw(worker, bucket, {"list-type": "2", "encoding-type": "url", "prefix": "données/",
                                           "delimiter": "/", "start-after": "données/"}))
    assert unquote_plus(prefixed.findtext("Prefix") or "") == "données/"
    assert (prefixed.findtext("Prefix") or "").isascii()
    assert unquote_plus(prefixed.findtext("StartAfter") or "") == "données/"
    assert [unquote_plus(p.findtext("Prefix") or "") for p in prefixed.findall("CommonPrefixes")] == ["données/ß/"]


def test_list_objects_v2_raw_shape(s3, bucket: str, worker) -> None:  # type: ignore[no-untyped-def]
    _put(s3, bucket, ["one", "two"])
    root = _root(_raw(worker, bucket, {"list-type": "2", "max-keys": "1"}))
    assert root.tag == "ListBucketResult"
    assert root.findtext("Name") == bucket
    assert root.findtext("KeyCount") == "1"
    assert root.findtext("MaxKeys") == "1"
    assert root.findtext("IsTruncated") == "true"
    token = root.findtext("NextContinuationToken")
    assert token
    assert [c.findtext("Key") for c in root.findall("Contents")] == ["one"]
    assert root.find("Contents/Owner") is None
    nxt = _root(_raw(worker, bucket, {"list-type": "2", "continuation-token": token}))
    assert [c.findtext("Key") for c in nxt.findall("Contents")] == ["two"]
    assert nxt.findtext("ContinuationToken") == token
    assert nxt.findtext("IsTruncated") == "false"


# ---- ListObjectVersions --------------------------------------------------------------------------


def test_list_object_versions(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    keys = ["v1", "v2", "v3", "w/a", "w/b"]
    _put(s3, bucket, keys)
    s3.put_object(Bucket=bucket, Key="v2", Body=b"overwritten")  # still one version: unversioned bucket
    listing = s3.list_object_versions(Bucket=bucket)
    versions = listing["Versions"]
    assert [v["Key"] for v in versions] == keys
    assert all(v["VersionId"] == "null" and v["IsLatest"] is True for v in versions)
    assert versions[1]["Size"] == len(b"overwritten")
    assert versions[1]["ETag"] == f'"{hashlib.md5(b"overwritten").hexdigest()}"'
    assert "DeleteMarkers" not in listing

    seen: list[str] = []
    key_marker = ""
    for _ in range(10):
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=2, KeyMarker=key_marker)
        seen += [v["Key"] for v in page.get("Versions", [])]
        if not page["IsTruncated"]:
            break
        assert page["NextVersionIdMarker"] == "null"
        key_marker = page["NextKeyMarker"]
        assert key_marker == seen[-1]
    assert seen == keys

    delimited = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [v["Key"] for v in delimited["Versions"]] == ["v1", "v2", "v3"]
    assert _prefixes(delimited) == ["w/"]

    paginated = [v["Key"] for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 2}) for v in page.get("Versions", [])]
    assert paginated == keys


def test_list_object_versions_version_marker_without_key_marker(bucket: str, worker) -> None:  # type: ignore[no-untyped-def]
    response = _raw(worker, bucket, {"versions": "", "version-id-marker": "null"})
    assert response.status_code == 400
    assert _error_code(response) == "InvalidArgument"


# ---- paginators, delimiters and order ------------------------------------------------------------


def test_boto3_paginators(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    keys = sorted([f"p/{i:03d}" for i in range(13)] + [f"q{i}" for i in range(4)] + ["p/deep/x", "r/s/t"])
    _put(s3, bucket, keys)
    for operation in ("list_objects", "list_objects_v2"):
        pages = list(s3.get_paginator(operation).paginate(Bucket=bucket, PaginationConfig={"PageSize": 5}))
        assert len(pages) == 4
        assert [k for page in pages for k in _keys(page)] == keys
        delimited = list(s3.get_paginator(operation).paginate(
            Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 2}))
        assert [k for page in delimited for k in _keys(page)] == ["q0", "q1", "q2", "q3"]
        assert [p for page in delimited for p in _prefixes(page)] == ["p/", "r/"]
        under_p = list(s3.get_paginator(operation).paginate(
            Bucket=bucket, Prefix="p/", Delimiter="/", PaginationConfig={"PageSize": 4}))
        assert [k for page in under_p for k in _keys(page)] == [f"p/{i:03d}" for i in range(13)]
        assert [p for page in under_p for p in _prefixes(page)] == ["p/deep/"]


def test_common_prefixes_at_several_depths(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    _put(s3, bucket, ["top", "x/1", "x/y/2", "x/y/z/3", "x/y/z/4", "x/y2/5", "xa"])
    expectations = {
        "": (["top", "xa"], ["x/"]),
        "x": (["xa"], ["x/"]),
        "x/": (["x/1"], ["x/y/", "x/y2/"]),
        "x/y": ([], ["x/y/", "x/y2/"]),
        "x/y/": (["x/y/2"], ["x/y/z/"]),
        "x/y/z/": (["x/y/z/3", "x/y/z/4"], []),
        "x/y/z/3": (["x/y/z/3"], []),
        "nothing/": ([], []),
    }
    for prefix, (keys, prefixes) in expectations.items():
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
        assert (_keys(listing), _prefixes(listing)) == (keys, prefixes), prefix
        assert listing["KeyCount"] == len(keys) + len(prefixes)
    no_delimiter = s3.list_objects_v2(Bucket=bucket, Prefix="x/y")
    assert _keys(no_delimiter) == ["x/y/2", "x/y/z/3", "x/y/z/4", "x/y2/5"]


@pytest.mark.not_on_origin(reason=(
    "moto's ListObjectsV2 drops a common prefix that sorts before start-after even when later keys "
    "roll up into it (p/ for start-after=p/a)"
))
def test_marker_inside_a_directory_with_delimiter(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """A common prefix appears only if some key after the marker rolls up into it."""
    _put(s3, bucket, ["k1", "p/a", "p/b", "p/sub/c", "q/a"])
    cases = {
        ("", "p/a"): ([], ["p/", "q/"]),
        ("", "p/sub/c"): ([], ["q/"]),  # nothing under p/ is left after the marker
        ("", "p/"): ([], ["q/"]),  # the marker is the prefix itself: already returned
        ("", "p/sub/"): ([], ["p/", "q/"]),
        ("p/", "p/a"): (["p/b"], ["p/sub/"]),
        ("p/", "p/sub/c"): ([], []),
        ("p/", "p/sub/"): ([], []),
        ("p/", "p/sub"): ([], ["p/sub/"]),
    }
    for (prefix, marker), expected in cases.items():
        v2 = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, StartAfter=marker, Delimiter="/")
        assert (_keys(v2), _prefixes(v2)) == expected, (prefix, marker)
        assert v2["KeyCount"] == len(expected[0]) + len(expected[1])
        v1 = s3.list_objects(Bucket=bucket, Prefix=prefix, Marker=marker, Delimiter="/")
        assert (_keys(v1), _prefixes(v1)) == expected, (prefix, marker)


def test_non_slash_delimiter(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    _put(s3, bucket, ["photos_2020_jan", "photos_2020_feb/x", "photos_2021", "photos", "a-b", "a/b", "a0"])
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="_")
    assert _keys(top) == ["a-b", "a/b", "a0", "photos"]
    assert _prefixes(top) == ["photos_"]
    inner = s3.list_objects_v2(Bucket=bucket, Prefix="photos_", Delimiter="_")
    assert _keys(inner) == ["photos_2021"]
    assert _prefixes(inner) == ["photos_2020_"]
    dash = s3.list_objects(Bucket=bucket, Delimiter="-")
    assert _keys(dash) == ["a/b", "a0", "photos", "photos_2020_feb/x", "photos_2020_jan", "photos_2021"]
    assert _prefixes(dash) == ["a-"]
    multi = s3.list_objects_v2(Bucket=bucket, Delimiter="20_")
    assert _prefixes(multi) == ["photos_2020_"]
    paged = list(s3.get_paginator("list_objects").paginate(Bucket=bucket, Delimiter="_",
                                                           PaginationConfig={"PageSize": 1}))
    assert [k for p in paged for k in _keys(p)] == ["a-b", "a/b", "a0", "photos"]
    assert [k for p in paged for k in _prefixes(p)] == ["photos_"]


def test_lexicographic_order(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    _put(s3, bucket, ORDER_KEYS)
    assert _keys(s3.list_objects_v2(Bucket=bucket)) == ORDER_KEYS  # already in S3 order
    assert ORDER_KEYS == sorted(ORDER_KEYS)
    delimited = s3.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix="a")
    assert _keys(delimited) == ["a!", "a-b", "a.txt", "a0", "a~"]
    assert _prefixes(delimited) == ["a/"]
    # Paging one key at a time crosses every boundary, including into and out of the "a/" directory.
    for delimiter, expected in (("", ORDER_KEYS), ("/", ["a!", "a-b", "a.txt", "a/", "a0", "a~", "b"])):
        got: list[str] = []
        marker = ""
        for _ in range(20):
            page = s3.list_objects(Bucket=bucket, MaxKeys=1, Marker=marker, Delimiter=delimiter)
            got += _keys(page) + _prefixes(page)
            if not page["IsTruncated"]:
                break
            marker = page.get("NextMarker") or got[-1]
        assert got == expected, delimiter
        v2 = [k for p in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Delimiter=delimiter, Prefix="a", PaginationConfig={"PageSize": 1})
              for k in _keys(p) + _prefixes(p)]
        assert v2 == [k for k in expected if k.startswith("a")]
    _put(s3, bucket, ["c/0", "c/-", "c-"])
    assert _keys(s3.list_objects_v2(Bucket=bucket, Prefix="c")) == ["c-", "c/-", "c/0"]


def test_unicode_order_is_byte_order(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    keys = ["z", "é", "日本", "ß", "Z", "a", "\U0001F600", "\uFF21"]
    _put(s3, bucket, keys)
    expected = sorted(keys, key=lambda k: k.encode("utf-8"))
    assert _keys(s3.list_objects_v2(Bucket=bucket)) == expected
    paged = [k for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})
             for k in _keys(p)]
    assert paged == expected


# ---- directory markers and files placed by hand -------------------------------------------------


def test_dir_marker_object(s3, bucket: str, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="dir/", Body=b"")
    listing = s3.list_objects_v2(Bucket=bucket)
    assert _keys(listing) == ["dir/"]
    assert listing["Contents"][0]["Size"] == 0
    assert listing["Contents"][0]["ETag"] == EMPTY_ETAG
    assert (data_dir / bucket / "dir").is_dir()
    head = s3.head_object(Bucket=bucket, Key="dir/")
    assert head["ContentLength"] == 0 and head["ETag"] == EMPTY_ETAG
    assert s3.get_object(Bucket=bucket, Key="dir/")["Body"].read() == b""

    delimited = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert _keys(delimited) == [] and _prefixes(delimited) == ["dir/"]
    inside = s3.list_objects_v2(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert _keys(inside) == ["dir/"] and _prefixes(inside) == []

    s3.put_object(Bucket=bucket, Key="dir/file", Body=b"f")
    assert _keys(s3.list_objects_v2(Bucket=bucket)) == ["dir/", "dir/file"]
    s3.delete_object(Bucket=bucket, Key="dir/file")
    assert _keys(s3.list_objects_v2(Bucket=bucket)) == ["dir/"]  # an explicit marker outlives its children
    s3.delete_object(Bucket=bucket, Key="dir/")
    assert _keys(s3.list_objects_v2(Bucket=bucket)) == []
    assert not (data_dir / bucket / "dir").exists()


def test_empty_directories_made_by_hand_list_as_markers(s3, bucket: str, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    root = data_dir / bucket
    (root / "handdir").mkdir()
    (root / "nested" / "empty").mkdir(parents=True)
    (root / "nested" / "file.txt").write_bytes(b"nested file")
    listing = s3.list_objects_v2(Bucket=bucket)
    assert _keys(listing) == ["handdir/", "nested/empty/", "nested/file.txt"]
    sizes = {item["Key"]: item["Size"] for item in listing["Contents"]}
    assert sizes == {"handdir/": 0, "nested/empty/": 0, "nested/file.txt": 11}
    etags = {item["Key"]: item["ETag"] for item in listing["Contents"]}
    assert etags["handdir/"] == EMPTY_ETAG and etags["nested/empty/"] == EMPTY_ETAG
    assert s3.head_object(Bucket=bucket, Key="handdir/")["ContentLength"] == 0
    # A non-empty directory is only a prefix, not an object.
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="nested/")
    assert _error(exc) == (404, "404")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="nested/")
    assert _error(exc) == (404, "NoSuchKey")
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert _prefixes(top) == ["handdir/", "nested/"]
    inner = s3.list_objects_v2(Bucket=bucket, Prefix="nested/", Delimiter="/")
    assert _keys(inner) == ["nested/file.txt"] and _prefixes(inner) == ["nested/empty/"]


def test_deleting_last_key_of_implicit_directory_leaves_no_phantom(s3, bucket: str, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="imp/deep/er/k", Body=b"k")
    s3.put_object(Bucket=bucket, Key="imp/sibling", Body=b"s")
    s3.delete_object(Bucket=bucket, Key="imp/deep/er/k")
    assert _keys(s3.list_objects_v2(Bucket=bucket)) == ["imp/sibling"]
    assert not (data_dir / bucket / "imp" / "deep").exists()
    s3.delete_object(Bucket=bucket, Key="imp/sibling")
    assert _keys(s3.list_objects_v2(Bucket=bucket)) == []
    assert _prefixes(s3.list_objects_v2(Bucket=bucket, Delimiter="/")) == []
    assert not (data_dir / bucket / "imp").exists()
    assert (data_dir / bucket).is_dir()
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "gone/x"}]})
    assert [d["Key"] for d in deleted["Deleted"]] == ["gone/x"]
    s3.put_object(Bucket=bucket, Key="multi/a/b", Body=b"1")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "multi/a/b"}]})
    assert _keys(s3.list_objects_v2(Bucket=bucket)) == []
    assert not (data_dir / bucket / "multi").exists()


def test_files_placed_by_hand_have_md5_etags_everywhere(s3, bucket: str, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    content = os.urandom(300_000)
    path = data_dir / bucket / "hand" / "made.bin"
    path.parent.mkdir()
    path.write_bytes(content)
    expected = f'"{hashlib.md5(content).hexdigest()}"'
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(i["Key"], i["Size"], i["ETag"]) for i in listed] == [("hand/made.bin", len(content), expected)]
    assert s3.head_object(Bucket=bucket, Key="hand/made.bin")["ETag"] == expected
    got = s3.get_object(Bucket=bucket, Key="hand/made.bin")
    assert got["ETag"] == expected and got["Body"].read() == content
    assert s3.list_objects(Bucket=bucket)["Contents"][0]["ETag"] == expected
    assert s3.list_object_versions(Bucket=bucket)["Versions"][0]["ETag"] == expected

    # Rewritten behind the server's back: the new bytes are the truth everywhere.
    changed = b"changed by hand"
    path.write_bytes(changed)
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    now = f'"{hashlib.md5(changed).hexdigest()}"'
    assert s3.head_object(Bucket=bucket, Key="hand/made.bin")["ETag"] == now
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["ETag"] == now
    got = s3.get_object(Bucket=bucket, Key="hand/made.bin")
    assert got["ETag"] == now and got["Body"].read() == changed
    assert got["ContentLength"] == len(changed)


def test_system_directory_never_listed(s3, bucket: str, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", Tagging="a=b")
    assert (data_dir / bucket / ".s3cache").is_dir()
    for kwargs in ({}, {"Delimiter": "/"}, {"Prefix": ".s3cache/"}, {"Prefix": ".s3"}, {"Prefix": "../"},
                   {"Prefix": ".s3cache/meta/", "Delimiter": "/"}):
        listing = s3.list_objects_v2(Bucket=bucket, **kwargs)
        names = _keys(listing) + _prefixes(listing)
        assert all(".s3cache" not in name for name in names), kwargs
    assert _keys(s3.list_objects_v2(Bucket=bucket)) == ["k"]
    assert _keys(s3.list_objects_v2(Bucket=bucket, Prefix="../")) == []


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"max-keys": "abc"}, {"max-keys": "-1"}, {"max-keys": "1.5"},
    {"list-type": "2", "max-keys": "ten"},
    {"versions": "", "max-keys": "x"},
    {"encoding-type": "base64"},
    {"list-type": "2", "encoding-type": "URL-ish"},
    {"versions": "", "encoding-type": "xml"},
    {"list-type": "2", "continuation-token": "!!!not-base64!!!"},
    {"list-type": "3"},
])
def test_invalid_list_arguments(bucket: str, worker, params: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    response = _raw(worker, bucket, params)
    assert response.status_code == 400, response.text
    assert _error_code(response) == "InvalidArgument"


def test_max_keys_zero_is_an_empty_complete_page(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    _put(s3, bucket, ["a", "b/c"])
    v2 = s3.list_objects_v2(Bucket=bucket, MaxKeys=0, Delimiter="/")
    assert (_keys(v2), _prefixes(v2), v2["KeyCount"], v2["IsTruncated"]) == ([], [], 0, False)
    assert "NextContinuationToken" not in v2
    v1 = s3.list_objects(Bucket=bucket, MaxKeys=0)
    assert (_keys(v1), v1["IsTruncated"], v1["MaxKeys"]) == ([], False, 0)
    assert "NextMarker" not in v1


def test_max_keys_above_1000_is_capped(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="only", Body=b"")
    assert s3.list_objects_v2(Bucket=bucket, MaxKeys=5000)["MaxKeys"] == 1000


def test_list_missing_bucket(s3) -> None:  # type: ignore[no-untyped-def]
    for call in (s3.list_objects, s3.list_objects_v2, s3.list_object_versions):
        with pytest.raises(ClientError) as exc:
            call(Bucket="no-such-bucket-here")
        assert _error(exc) == (404, "NoSuchBucket")
