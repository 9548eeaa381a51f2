"""Flexible checksums of multipart uploads and GetObjectAttributes, through a real worker over the directory and
over an S3 origin (moto), with boto3 validating every checksum it receives.

Each expected value is computed here from the bytes sent (zlib, awscrt, hashlib): a composite checksum is the
checksum of the parts' raw checksums, then ``-N``; a full-object one the CRC of all the bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from rig.processes import Worker
from tests.conftest import make_client
from tests.e2e.test_awscli import aws
from tests.unit.cache.s3.test_checksums import REFERENCE

MIB = 1 << 20
PARTS = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(MIB + 123)]
RAW = {name.upper(): raw for name, raw in REFERENCE.items()}  # as boto3 names the algorithms
# every algorithm with every checksum type S3 allows it, the default first
PAIRS = [("CRC32", "COMPOSITE"), ("CRC32", "FULL_OBJECT"), ("CRC32C", "COMPOSITE"), ("CRC32C", "FULL_OBJECT"),
         ("CRC64NVME", "FULL_OBJECT"), ("SHA1", "COMPOSITE"), ("SHA256", "COMPOSITE")]
DEFAULT_TYPE = {"CRC32": "COMPOSITE", "CRC32C": "COMPOSITE", "CRC64NVME": "FULL_OBJECT", "SHA1": "COMPOSITE",
                "SHA256": "COMPOSITE"}
AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=tester/20260101/us-east-1/s3/aws4_request, "
                         "SignedHeaders=host, Signature=0"}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def of(algorithm: str, data: bytes) -> str:
    return b64(RAW[algorithm](data))


def expected(algorithm: str, checksum_type: str, parts: list[bytes]) -> str:
    if checksum_type == "FULL_OBJECT":
        return of(algorithm, b"".join(parts))
    return f"{of(algorithm, b''.join(RAW[algorithm](part) for part in parts))}-{len(parts)}"


@pytest.fixture(scope="module")
def s3v(worker: Worker) -> Any:
    """boto3 sending checksums whenever it can and validating every checksum it receives."""
    return make_client(worker.url, request_checksum_calculation="when_supported",
                       response_checksum_validation="when_supported")


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response: Any = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def _upload(s3: Any, bucket: str, key: str, algorithm: str, checksum_type: str | None,
            parts: list[bytes]) -> tuple[str, list[dict[str, Any]]]:
    """Create an upload with the checksum and send its parts, each with its checksum; (upload id, part list)."""
    args = {"ChecksumType": checksum_type} if checksum_type else {}
    created = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm, **args)
    assert (created["ChecksumAlgorithm"], created["ChecksumType"]) == (algorithm,
                                                                       checksum_type or DEFAULT_TYPE[algorithm])
    done = []
    for number, data in enumerate(parts, 1):
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=created["UploadId"], PartNumber=number, Body=data,
                              ChecksumAlgorithm=algorithm)
        assert part[f"Checksum{algorithm}"] == of(algorithm, data)
        done.append({"PartNumber": number, "ETag": part["ETag"], f"Checksum{algorithm}": part[f"Checksum{algorithm}"]})
    return created["UploadId"], done


@pytest.mark.parametrize(("algorithm", "checksum_type"), PAIRS)
def test_a_multipart_upload_with_each_checksum(s3v: Any, bucket: str, algorithm: str, checksum_type: str) -> None:
    key = f"mp-{algorithm}-{checksum_type}"
    upload_id, done = _upload(s3v, bucket, key, algorithm, checksum_type, PARTS)
    value = expected(algorithm, checksum_type, PARTS)
    uploads = s3v.list_multipart_uploads(Bucket=bucket, Prefix=key)["Uploads"]
    assert [(u["UploadId"], u["ChecksumAlgorithm"], u["ChecksumType"]) for u in uploads] == \
        [(upload_id, algorithm, checksum_type)]
    completed = s3v.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                              MultipartUpload={"Parts": done})
    assert (completed[f"Checksum{algorithm}"], completed["ChecksumType"]) == (value, checksum_type)

    head = s3v.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (head[f"Checksum{algorithm}"], head["ChecksumType"]) == (value, checksum_type)
    got = s3v.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (got[f"Checksum{algorithm}"], got["ChecksumType"]) == (value, checksum_type)
    assert got["Body"].read() == b"".join(PARTS)  # a full-object checksum is checked by botocore as it reads
    plain = s3v.head_object(Bucket=bucket, Key=key)  # without checksum mode, no checksum
    assert not [name for name in plain if name.startswith("Checksum")]

    attributes = s3v.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=[
        "ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"])
    assert attributes["ETag"] == completed["ETag"].strip('"')
    assert attributes["Checksum"] == {f"Checksum{algorithm}": value, "ChecksumType": checksum_type}
    assert (attributes["ObjectSize"], attributes["StorageClass"]) == (sum(map(len, PARTS)), "STANDARD")
    assert attributes["ObjectParts"]["TotalPartsCount"] == len(PARTS)
    assert attributes["LastModified"] == head["LastModified"]


@pytest.mark.not_on_origin(reason="moto's ListParts has no checksums (neither the upload's algorithm nor the parts')")
@pytest.mark.parametrize(("algorithm", "checksum_type"), [("CRC32C", "FULL_OBJECT"), ("SHA256", "COMPOSITE")])
def test_list_parts_shows_the_checksum_of_the_upload_and_of_each_part(s3v: Any, bucket: str, algorithm: str,
                                                                      checksum_type: str) -> None:
    upload_id, _ = _upload(s3v, bucket, "listed", algorithm, checksum_type, [b"one", b"two"])
    listed = s3v.list_parts(Bucket=bucket, Key="listed", UploadId=upload_id)
    assert (listed["ChecksumAlgorithm"], listed["ChecksumType"]) == (algorithm, checksum_type)
    assert [(p["PartNumber"], p["Size"], p[f"Checksum{algorithm}"]) for p in listed["Parts"]] == \
        [(1, 3, of(algorithm, b"one")), (2, 3, of(algorithm, b"two"))]


@pytest.mark.not_on_origin(reason="moto keeps no part checksums: ObjectParts has no Part entries in its answer")
def test_get_object_attributes_pages_the_parts_with_their_checksums(s3v: Any, bucket: str) -> None:
    upload_id, done = _upload(s3v, bucket, "paged", "SHA1", None, PARTS)
    s3v.complete_multipart_upload(Bucket=bucket, Key="paged", UploadId=upload_id, MultipartUpload={"Parts": done})
    first = s3v.get_object_attributes(Bucket=bucket, Key="paged", ObjectAttributes=["ObjectParts"], MaxParts=2)
    parts = first["ObjectParts"]
    assert (parts["TotalPartsCount"], parts["IsTruncated"], parts["NextPartNumberMarker"], parts["MaxParts"]) == \
        (3, True, 2, 2)
    assert parts["Parts"] == [{"PartNumber": n, "Size": len(d), "ChecksumSHA1": of("SHA1", d)}
                              for n, d in enumerate(PARTS[:2], 1)]
    rest = s3v.get_object_attributes(Bucket=bucket, Key="paged", ObjectAttributes=["ObjectParts"],
                                     PartNumberMarker=2)["ObjectParts"]
    assert (rest["IsTruncated"], rest["Parts"]) == (False, [{"PartNumber": 3, "Size": len(PARTS[2]),
                                                            "ChecksumSHA1": of("SHA1", PARTS[2])}])
    assert "Checksum" not in first and "ObjectSize" not in first  # only what was asked


@pytest.mark.parametrize("algorithm", sorted(RAW))
def test_upload_file_with_each_checksum_algorithm(s3v: Any, bucket: str, tmp_path: Path, algorithm: str) -> None:
    """The transfer manager, in 5 MiB parts: create, parts and complete as boto3 makes them."""
    source = tmp_path / "up.bin"
    source.write_bytes(b"".join(PARTS))
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2)
    s3v.upload_file(str(source), bucket, f"tm-{algorithm}", ExtraArgs={"ChecksumAlgorithm": algorithm},
                    Config=config)
    head = s3v.head_object(Bucket=bucket, Key=f"tm-{algorithm}", ChecksumMode="ENABLED")
    checksum_type = DEFAULT_TYPE[algorithm]
    assert (head[f"Checksum{algorithm}"], head["ChecksumType"]) == (expected(algorithm, checksum_type, PARTS),
                                                                    checksum_type)
    target = tmp_path / "down.bin"
    s3v.download_file(bucket, f"tm-{algorithm}", str(target))
    assert target.read_bytes() == source.read_bytes()


def test_upload_file_by_default_and_with_a_full_object_checksum_it_knows(s3v: Any, bucket: str,
                                                                           tmp_path: Path) -> None:
    source = tmp_path / "up.bin"
    source.write_bytes(b"".join(PARTS))
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3v.upload_file(str(source), bucket, "default", Config=config)  # boto3's own choice: CRC32, composite
    head = s3v.head_object(Bucket=bucket, Key="default", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (expected("CRC32", "COMPOSITE", PARTS), "COMPOSITE")
    whole = of("CRC64NVME", b"".join(PARTS))  # given: boto3 makes the upload FULL_OBJECT and sends it on Complete
    s3v.upload_file(str(source), bucket, "known", Config=config, ExtraArgs={"ChecksumCRC64NVME": whole})
    head = s3v.head_object(Bucket=bucket, Key="known", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (whole, "FULL_OBJECT")
    assert s3v.get_object(Bucket=bucket, Key="known", ChecksumMode="ENABLED")["Body"].read() == b"".join(PARTS)


@pytest.mark.parametrize(("algorithm", "checksum_type"), [
    ("CRC64NVME", "COMPOSITE"), ("SHA1", "FULL_OBJECT"), ("SHA256", "FULL_OBJECT"), ("MD5", None),
])
def test_a_checksum_s3_does_not_have_for_an_upload_is_invalid_request(s3: Any, bucket: str, algorithm: str,
                                                                     checksum_type: str | None) -> None:
    args = {"ChecksumType": checksum_type} if checksum_type else {}
    with pytest.raises(ClientError) as refused:
        s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm=algorithm, **args)
    assert _error(refused) == (400, "InvalidRequest")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_checksum_type_without_an_algorithm_is_invalid_request(bucket: str, worker: Worker) -> None:
    with httpx.Client(base_url=worker.url, headers=AUTH, timeout=30) as http:
        answer = http.post(f"/{bucket}/k?uploads", headers={"x-amz-checksum-type": "FULL_OBJECT"})
    assert answer.status_code == 400
    assert b"<Code>InvalidRequest</Code>" in answer.content


def test_a_part_whose_bytes_are_not_its_checksum_is_bad_digest(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="SHA256")["UploadId"]
    with pytest.raises(ClientError) as refused:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"the bytes",
                       ChecksumSHA256=of("SHA256", b"other bytes"))
    assert _error(refused) == (400, "BadDigest")
    assert s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id).get("Parts", []) == []


@pytest.mark.not_on_origin(reason="moto checks no part checksum against its upload's, nor any checksum on Complete")
def test_complete_refuses_checksums_that_are_not_the_uploads(s3: Any, bucket: str) -> None:
    upload_id, done = _upload(s3, bucket, "k", "CRC32", None, [PARTS[0], b"last"])
    with pytest.raises(ClientError) as refused:  # a part sent with another algorithm than its upload's
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=3, Body=b"x", ChecksumAlgorithm="SHA1")
    assert _error(refused) == (400, "InvalidRequest")
    wrong_part = [dict(done[0]), {**done[1], "ChecksumCRC32": of("CRC32", b"not the last")}]
    without = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in done]
    for parts, args, answer in [
        (wrong_part, {}, (400, "InvalidPart")),
        (without, {}, (400, "InvalidRequest")),  # a composite upload's Complete names each part's checksum
        (done, {"ChecksumCRC32": of("CRC32", b"not the object")}, (400, "BadDigest")),
    ]:
        with pytest.raises(ClientError) as refused:
            s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": parts},
                                         **args)
        assert _error(refused) == answer
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="k")
    assert _error(missing) == (404, "404")  # nothing was committed
    value = expected("CRC32", "COMPOSITE", [PARTS[0], b"last"])
    completed = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id,
                                             MultipartUpload={"Parts": done}, ChecksumCRC32=value)
    assert completed["ChecksumCRC32"] == value


@pytest.mark.not_on_origin(reason="moto computes an UploadPartCopy's checksum only when the copy request names an "
                                  "algorithm, which S3's does not")
def test_upload_part_copy_answers_the_parts_checksum(s3v: Any, bucket: str) -> None:
    s3v.put_object(Bucket=bucket, Key="source", Body=PARTS[0] + PARTS[1])
    upload_id = s3v.create_multipart_upload(Bucket=bucket, Key="copy", ChecksumAlgorithm="CRC32C")["UploadId"]
    copied = s3v.upload_part_copy(Bucket=bucket, Key="copy", UploadId=upload_id, PartNumber=1,
                                  CopySource={"Bucket": bucket, "Key": "source"},
                                  CopySourceRange=f"bytes=0-{5 * MIB - 1}")["CopyPartResult"]
    assert copied["ChecksumCRC32C"] == of("CRC32C", PARTS[0])
    last = s3v.upload_part(Bucket=bucket, Key="copy", UploadId=upload_id, PartNumber=2, Body=b"end",
                           ChecksumAlgorithm="CRC32C")
    s3v.complete_multipart_upload(Bucket=bucket, Key="copy", UploadId=upload_id, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": copied["ETag"], "ChecksumCRC32C": copied["ChecksumCRC32C"]},
        {"PartNumber": 2, "ETag": last["ETag"], "ChecksumCRC32C": last["ChecksumCRC32C"]}]})
    head = s3v.head_object(Bucket=bucket, Key="copy", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == expected("CRC32C", "COMPOSITE", [PARTS[0], b"end"])


def test_get_object_attributes_of_a_multipart_object_without_a_checksum_counts_its_parts_only(
        s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="plain")["UploadId"]
    done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="plain", UploadId=upload_id, PartNumber=n,
                                                     Body=data)["ETag"]} for n, data in enumerate(PARTS[1:], 1)]
    s3.complete_multipart_upload(Bucket=bucket, Key="plain", UploadId=upload_id, MultipartUpload={"Parts": done})
    attributes = s3.get_object_attributes(Bucket=bucket, Key="plain", ObjectAttributes=["ObjectParts", "Checksum"])
    assert "Checksum" not in attributes
    parts = attributes["ObjectParts"]
    assert (parts["TotalPartsCount"], parts["IsTruncated"], "Parts" in parts) == (2, False, False)


def test_get_object_attributes_of_a_single_part_object(s3v: Any, bucket: str) -> None:
    put = s3v.put_object(Bucket=bucket, Key="single", Body=b"one part", ChecksumAlgorithm="SHA256")
    attributes = s3v.get_object_attributes(Bucket=bucket, Key="single", ObjectAttributes=[
        "ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"])
    assert attributes["ETag"] == put["ETag"].strip('"') == hashlib.md5(b"one part").hexdigest()
    assert attributes["Checksum"] == {"ChecksumSHA256": of("SHA256", b"one part"), "ChecksumType": "FULL_OBJECT"}
    assert (attributes["ObjectSize"], attributes["StorageClass"]) == (8, "STANDARD")
    assert "ObjectParts" not in attributes  # not uploaded in parts
    head = s3v.head_object(Bucket=bucket, Key="single", ChecksumMode="ENABLED")
    assert (head["ChecksumSHA256"], head["ChecksumType"]) == (of("SHA256", b"one part"), "FULL_OBJECT")


def test_get_object_attributes_errors(s3: Any, bucket: str, worker: Worker) -> None:
    with pytest.raises(ClientError) as missing:
        s3.get_object_attributes(Bucket=bucket, Key="nothing", ObjectAttributes=["ETag"])
    assert _error(missing) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as no_bucket:
        s3.get_object_attributes(Bucket=f"none-{uuid.uuid4().hex[:8]}", Key="k", ObjectAttributes=["ETag"])
    assert _error(no_bucket) == (404, "NoSuchBucket")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as unknown:
        s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ETag", "Colour"])
    assert _error(unknown) == (400, "InvalidArgument")
    with httpx.Client(base_url=worker.url, headers=AUTH, timeout=30) as http:
        none = http.get(f"/{bucket}/k?attributes")
        wrong_version = http.get(f"/{bucket}/k?attributes&versionId=v1", headers={"x-amz-object-attributes": "ETag"})
    assert (none.status_code, b"<Code>InvalidArgument</Code>" in none.content) == (400, True)
    assert (wrong_version.status_code, b"<Code>InvalidArgument</Code>" in wrong_version.content) == (400, True)


@pytest.fixture
def fs_sha256(worker: Worker) -> Iterator[Any]:
    import s3fs

    yield s3fs.S3FileSystem(key="tester", secret="secret", skip_instance_cache=True, use_listings_cache=False,
                            client_kwargs={"endpoint_url": worker.url, "region_name": "us-east-1"},
                            config_kwargs={"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1},
                                           "response_checksum_validation": "when_supported"},
                            s3_additional_kwargs={"ChecksumAlgorithm": "SHA256"})


def test_s3fs_round_trips_a_checksummed_multipart_object(fs_sha256: Any, s3v: Any, bucket: str) -> None:
    data = b"".join(PARTS)
    with fs_sha256.open(f"{bucket}/fs.bin", "wb", block_size=5 * MIB) as out:
        for offset in range(0, len(data), MIB):
            out.write(data[offset:offset + MIB])
    head = s3v.head_object(Bucket=bucket, Key="fs.bin", ChecksumMode="ENABLED")
    assert head["ETag"].endswith(f'-{len(PARTS)}"')
    # s3fs sends its parts as it fills its 5 MiB blocks: the parts are those blocks
    blocks = [data[i:i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
    assert (head["ChecksumSHA256"], head["ChecksumType"]) == (expected("SHA256", "COMPOSITE", blocks), "COMPOSITE")
    assert fs_sha256.cat_file(f"{bucket}/fs.bin") == data
    # the other way: boto3 writes a checksummed multipart object, s3fs reads it back
    upload_id, done = _upload(s3v, bucket, "boto.bin", "CRC64NVME", None, PARTS)
    s3v.complete_multipart_upload(Bucket=bucket, Key="boto.bin", UploadId=upload_id, MultipartUpload={"Parts": done})
    assert fs_sha256.cat_file(f"{bucket}/boto.bin") == data
    assert fs_sha256.cat_file(f"{bucket}/boto.bin", start=5 * MIB - 10, end=5 * MIB + 10) == data[5 * MIB - 10:
                                                                                                 5 * MIB + 10]


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256"])
def test_the_aws_cli_round_trips_a_checksummed_multipart_object(worker: Worker, bucket: str, tmp_path: Path,
                                                                 algorithm: str) -> None:
    """`aws s3 cp --checksum-algorithm` up in 8 MiB parts (awscli's threshold and part size), and down again in
    checksum mode; s3api's head-object and get-object-attributes show the composite checksum."""
    data = os.urandom(9 * MIB + 12345)
    source, target = tmp_path / "up.bin", tmp_path / "down.bin"
    source.write_bytes(data)
    aws(worker, "s3", "cp", str(source), f"s3://{bucket}/cli.bin", "--checksum-algorithm", algorithm)
    value = expected(algorithm, "COMPOSITE", [data[:8 * MIB], data[8 * MIB:]])
    head = json.loads(aws(worker, "s3api", "head-object", "--bucket", bucket, "--key", "cli.bin",
                          "--checksum-mode", "ENABLED").stdout)
    assert (head[f"Checksum{algorithm}"], head["ChecksumType"], head["ETag"][-3:]) == (value, "COMPOSITE", '-2"')
    attributes = json.loads(aws(worker, "s3api", "get-object-attributes", "--bucket", bucket, "--key", "cli.bin",
                                "--object-attributes", "Checksum", "ObjectSize", "ObjectParts").stdout)
    assert attributes["Checksum"] == {f"Checksum{algorithm}": value, "ChecksumType": "COMPOSITE"}
    assert (attributes["ObjectSize"], attributes["ObjectParts"]["TotalPartsCount"]) == (len(data), 2)
    aws(worker, "s3", "cp", f"s3://{bucket}/cli.bin", str(target), "--checksum-mode", "ENABLED")
    assert target.read_bytes() == data


@pytest.mark.not_on_origin(reason="moto's CopyObject keeps the source's checksum as it is, composite included")
def test_a_copy_keeps_a_checksum_of_the_bytes_but_not_a_composite_one(s3v: Any, bucket: str) -> None:
    for algorithm, checksum_type in (("CRC32", "FULL_OBJECT"), ("SHA256", "COMPOSITE")):
        upload_id, done = _upload(s3v, bucket, f"src-{algorithm}", algorithm, checksum_type, PARTS[1:])
        s3v.complete_multipart_upload(Bucket=bucket, Key=f"src-{algorithm}", UploadId=upload_id,
                                      MultipartUpload={"Parts": done})
        s3v.copy_object(Bucket=bucket, Key=f"copy-{algorithm}", CopySource={"Bucket": bucket, "Key": f"src-{algorithm}"})
    full = s3v.head_object(Bucket=bucket, Key="copy-CRC32", ChecksumMode="ENABLED")
    assert (full["ChecksumCRC32"], full["ChecksumType"]) == (of("CRC32", b"".join(PARTS[1:])), "FULL_OBJECT")
    composite = s3v.head_object(Bucket=bucket, Key="copy-SHA256", ChecksumMode="ENABLED")
    assert not [name for name in composite if name.startswith("Checksum")]  # the copy is one part: no -2 of parts
    assert s3v.get_object(Bucket=bucket, Key="copy-SHA256")["Body"].read() == b"".join(PARTS[1:])
