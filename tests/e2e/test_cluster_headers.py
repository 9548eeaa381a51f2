"""Every worker of a cluster answers HEAD and GET with the same S3 headers, whichever of them asked the origin or
took the write.

One worker learns an object's metadata with a HEAD at the origin and shares it through Redis; the others
answer from the shared copy. Nothing may be lost on the way, checksums (x-amz-checksum-mode: ENABLED) and
user metadata included. Three real workers, one Redis, one moto origin: the fixtures of test_cluster.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import make_client
from tests.e2e.test_checksums import expected
from tests.e2e.test_cluster import IDS, Origin, Rig, make_rig, s3_client
from tests.e2e.test_cluster import origin as origin  # the module-scoped moto origin, as in test_cluster

pytestmark = pytest.mark.slow

MiB = 1 << 20
LAST_PART = b"the last part"
# The S3 headers a client reads from an object's HEAD/GET (and x-amz-meta-*, x-amz-checksum-*): every worker's
# must be the same.
COMPARED = ("etag", "content-length", "content-type", "last-modified", "accept-ranges", "x-amz-mp-parts-count",
            "x-amz-tagging-count")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, origin: Origin) -> Iterator[Rig]:
    yield from make_rig(tmp_path_factory, origin, "proxy", {})


def s3_headers(response: dict[str, Any]) -> dict[str, str]:
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    return {name: value for name, value in headers.items()
            if name in COMPARED or name.startswith(("x-amz-meta-", "x-amz-checksum-"))}


def seed(rig: Rig) -> dict[str, dict[str, Any]]:
    """A single-part and a multipart object with SHA-256 checksums, put straight at moto; key -> moto's HEAD."""
    s3 = s3_client(rig.origin.moto.url, "origin-key")
    single = f"single-{uuid.uuid4().hex[:8]}"
    s3.put_object(Bucket=rig.bucket, Key=single, Body=b"checksummed body", ChecksumAlgorithm="SHA256",
                  ContentType="text/x-test", Metadata={"colour": "blue", "shape": "round"})
    multi = f"multi-{uuid.uuid4().hex[:8]}"
    upload = s3.create_multipart_upload(Bucket=rig.bucket, Key=multi, ChecksumAlgorithm="SHA256",
                                        ContentType="application/x-parts", Metadata={"pieces": "two"})
    parts = []
    for number, data in enumerate([os.urandom(5 * MiB), LAST_PART], 1):
        part = s3.upload_part(Bucket=rig.bucket, Key=multi, UploadId=upload["UploadId"], PartNumber=number,
                              Body=data, ChecksumAlgorithm="SHA256")
        parts.append({"PartNumber": number, "ETag": part["ETag"], "ChecksumSHA256": part["ChecksumSHA256"]})
    s3.complete_multipart_upload(Bucket=rig.bucket, Key=multi, UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": parts})
    return {key: s3.head_object(Bucket=rig.bucket, Key=key, ChecksumMode="ENABLED") for key in (single, multi)}


def test_every_worker_answers_with_the_origins_s3_headers(rig: Rig) -> None:
    at_origin = seed(rig)
    single, multi = at_origin
    expected = {key: s3_headers(head) for key, head in at_origin.items()}
    # moto echoes x-amz-checksum-algorithm (a CreateMultipartUpload request header) on the multipart object's HEAD;
    # AWS sends no such response header, and s3cache does not take it for a checksum.
    assert expected[multi].pop("x-amz-checksum-algorithm", "SHA256") == "SHA256"
    # Where moto's HEAD differs from S3's, s3cache answers as S3 does: a checksum has a type (moto's HEAD names none
    # for an upload created without x-amz-checksum-type), and a composite one ends in -<parts> (moto's HEAD leaves it
    # out).
    assert "x-amz-checksum-type" not in expected[single]
    expected[single]["x-amz-checksum-type"] = "FULL_OBJECT"
    assert "x-amz-checksum-type" not in expected[multi]
    expected[multi]["x-amz-checksum-type"] = "COMPOSITE"  # a multipart SHA256 checksum is composite: S3 names it
    assert not expected[multi]["x-amz-checksum-sha256"].endswith("-2")
    expected[multi]["x-amz-checksum-sha256"] += "-2"
    # What moto itself answers, checked so that the comparisons below are about something:
    assert expected[single]["x-amz-checksum-sha256"] == at_origin[single]["ChecksumSHA256"]
    assert (expected[single]["x-amz-meta-colour"], expected[single]["content-type"]) == ("blue", "text/x-test")
    assert expected[multi]["etag"].endswith('-2"')
    assert expected[multi]["x-amz-meta-pieces"] == "two"
    assert expected[multi]["x-amz-checksum-sha256"]
    # moto sends x-amz-mp-parts-count only to a HEAD/GET with partNumber (as AWS does), which s3cache does not
    # ask its origin: a plain HEAD has no parts count to pass on, and no worker may invent one.
    assert "x-amz-mp-parts-count" not in expected[multi]

    for key in (single, multi):
        seen = {}
        for wid in IDS:  # the first learns the metadata from the origin, the others from Redis
            s3 = s3_client(rig.url(wid))
            head = s3.head_object(Bucket=rig.bucket, Key=key, ChecksumMode="ENABLED")
            get = s3.get_object(Bucket=rig.bucket, Key=key, ChecksumMode="ENABLED")
            if key == single:
                assert get["Body"].read() == b"checksummed body"  # botocore checks it against x-amz-checksum-sha256
            else:
                assert get["Body"].read()[-len(LAST_PART):] == LAST_PART  # a composite checksum: no body check
            seen[wid] = {"HEAD": s3_headers(head), "GET": s3_headers(get)}
        assert seen == {wid: {"HEAD": expected[key], "GET": expected[key]} for wid in IDS}, \
            f"{key}\n{rig.diagnostics()}"
        without_mode = {k: v for k, v in expected[key].items() if not k.startswith("x-amz-checksum-")}
        for wid in IDS:  # and without checksum mode, no worker sends a checksum
            assert s3_headers(s3_client(rig.url(wid)).head_object(Bucket=rig.bucket, Key=key)) == without_mode

    # The workers that did not ask the origin answered from Redis: its records carry the checksums.
    records = {name: json.loads(rig.redis.client().get(name) or "{}")
               for name in rig.redis.client().scan_iter("s3cache:meta:*")}
    assert sorted(name.split("/", 1)[1].rstrip("}") for name in records) == sorted(at_origin)
    for name, record in records.items():
        key = name.split("/", 1)[1].rstrip("}")
        assert record["checksums"] == {"sha256": expected[key]["x-amz-checksum-sha256"]}, record
        assert record["checksum_type"] == expected[key]["x-amz-checksum-type"], record


@pytest.mark.parametrize(("algorithm", "checksum_type"), [("CRC64NVME", "FULL_OBJECT"), ("SHA1", "COMPOSITE")])
def test_a_checksummed_multipart_upload_through_one_worker_is_answered_alike_by_every_worker(
        rig: Rig, algorithm: str, checksum_type: str) -> None:
    """Created, uploaded and completed through w0; every worker answers its checksum from the shared metadata."""
    writer = make_client(rig.url("w0"), response_checksum_validation="when_supported")
    key = f"through-{algorithm}-{uuid.uuid4().hex[:8]}"
    parts = [os.urandom(5 * MiB), LAST_PART]
    upload = writer.create_multipart_upload(Bucket=rig.bucket, Key=key, ChecksumAlgorithm=algorithm)
    done = []
    for number, data in enumerate(parts, 1):
        part = writer.upload_part(Bucket=rig.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number,
                                  Body=data, ChecksumAlgorithm=algorithm)
        done.append({"PartNumber": number, "ETag": part["ETag"], f"Checksum{algorithm}": part[f"Checksum{algorithm}"]})
    completed = writer.complete_multipart_upload(Bucket=rig.bucket, Key=key, UploadId=upload["UploadId"],
                                                 MultipartUpload={"Parts": done})
    value = expected(algorithm, checksum_type, parts)
    assert (completed[f"Checksum{algorithm}"], completed["ChecksumType"]) == (value, checksum_type)

    for wid in IDS:
        s3 = make_client(rig.url(wid), response_checksum_validation="when_supported")
        head = s3.head_object(Bucket=rig.bucket, Key=key, ChecksumMode="ENABLED")
        get = s3.get_object(Bucket=rig.bucket, Key=key, ChecksumMode="ENABLED")
        assert get["Body"].read() == b"".join(parts)  # botocore checks a full-object checksum as it reads
        attributes = s3.get_object_attributes(Bucket=rig.bucket, Key=key, ObjectAttributes=["Checksum", "ETag"])
        assert [(r[f"Checksum{algorithm}"], r["ChecksumType"]) for r in (head, get)] == [(value, checksum_type)] * 2, \
            f"{wid}\n{rig.diagnostics()}"
        assert attributes["Checksum"] == {f"Checksum{algorithm}": value, "ChecksumType": checksum_type}
        assert attributes["ETag"] == completed["ETag"].strip('"')
    record = json.loads(rig.redis.client().get(f"s3cache:meta:{{{rig.bucket}/{key}}}") or "{}")
    assert (record["checksums"], record["checksum_type"]) == ({algorithm.lower(): value}, checksum_type), record
