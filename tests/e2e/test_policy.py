"""The access policy through a real worker with boto3: a policy file with users, a declared group, prefixes and
anonymous access, over a directory and over a moto origin; and groups from OIDC tokens.

alice may do anything in the bucket; bob and the group ``readers`` (rita) may read and list ``ro/``; bob may also
write, delete, upload and tag under ``rw/``; anyone may read ``public/``; only alice may list the buckets. Every
refusal is 403 AccessDenied, changes nothing (read back byte for byte), and is logged once with the user, the
operation and the resource; ``s3cache policy check`` answers what the worker did.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from rig.processes import Worker
from tests.conftest import backend_worker, make_client
from tests.e2e.test_access import AUDIENCE, ISSUER, SigningKey, write_jwks

POLICY = """
[groups]
readers = ["rita"]

[[rules]]
principals = ["user:alice"]
bucket = "{bucket}"
actions = ["*"]

[[rules]]
principals = ["user:alice"]
actions = ["list"]

[[rules]]
principals = ["user:bob", "group:readers"]
bucket = "{bucket}"
prefix = "ro/"
actions = ["read", "list"]

[[rules]]
principals = ["user:bob"]
bucket = "{bucket}"
prefix = "rw/"
actions = ["read", "list", "write", "delete", "multipart", "tagging"]

[[rules]]
principals = ["anonymous"]
bucket = "{bucket}"
prefix = "public/"
actions = ["read"]
"""
SEED = b"seed bytes \x00\xff" * 100
SECRET = b"alice only" * 50
PUBLIC = b"for everyone"


class Rig:
    def __init__(self, worker: Worker, bucket: str, config: Path) -> None:
        self.worker, self.bucket, self.config = worker, bucket, config

    def client(self, user: str | None) -> Any:
        if user is None:
            return make_client(self.worker.url, signature_version=UNSIGNED)
        return make_client(self.worker.url, user)

    def body(self, key: str) -> bytes:
        data: bytes = self.client("alice").get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return data

    def exists(self, key: str) -> bool:
        try:
            self.client("alice").head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 404
            return False
        return True


@pytest.fixture(scope="module", params=["dir", "s3"])
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp(f"policy-{request.param}")
    bucket = f"pol-{uuid.uuid4().hex[:10]}"
    (workdir / "policy.toml").write_text(POLICY.format(bucket=bucket))
    config = workdir / "s3cache.toml"
    config.write_text(f'[auth]\npolicy_file = "{workdir / "policy.toml"}"\n')
    worker = backend_worker(request, workdir, "--config", str(config), capacity="64M").start()
    try:
        rig = Rig(worker, bucket, config)
        alice = rig.client("alice")
        alice.create_bucket(Bucket=bucket)
        for key, body in (("ro/seed", SEED), ("secret/s", SECRET), ("public/p", PUBLIC), ("rw/src", SEED)):
            alice.put_object(Bucket=bucket, Key=key, Body=body)
        yield rig
    finally:
        worker.stop()


def refused(call: Any, **kwargs: Any) -> None:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    if "Error" in caught.value.response and caught.value.response["Error"].get("Code") not in (None, "403"):
        assert caught.value.response["Error"]["Code"] == "AccessDenied"


def test_a_read_only_prefix_refuses_put_delete_multipart_and_copy_into(rig: Rig) -> None:
    bob, b = rig.client("bob"), rig.bucket
    assert bob.get_object(Bucket=b, Key="ro/seed")["Body"].read() == SEED
    assert bob.head_object(Bucket=b, Key="ro/seed")["ContentLength"] == len(SEED)
    refused(bob.put_object, Bucket=b, Key="ro/seed", Body=b"overwritten")
    refused(bob.put_object, Bucket=b, Key="ro/new", Body=b"new")
    refused(bob.delete_object, Bucket=b, Key="ro/seed")
    refused(bob.create_multipart_upload, Bucket=b, Key="ro/mp")
    refused(bob.copy_object, Bucket=b, Key="ro/copy", CopySource={"Bucket": b, "Key": "rw/src"})
    refused(bob.put_object_tagging, Bucket=b, Key="ro/seed", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    upload = rig.client("alice").create_multipart_upload(Bucket=b, Key="ro/mp")["UploadId"]
    try:
        refused(bob.upload_part, Bucket=b, Key="ro/mp", UploadId=upload, PartNumber=1, Body=b"part")
        refused(bob.upload_part_copy, Bucket=b, Key="ro/mp", UploadId=upload, PartNumber=1,
                CopySource={"Bucket": b, "Key": "rw/src"})
        refused(bob.abort_multipart_upload, Bucket=b, Key="ro/mp", UploadId=upload)
        assert rig.client("alice").list_parts(Bucket=b, Key="ro/mp", UploadId=upload).get("Parts", []) == []
    finally:
        rig.client("alice").abort_multipart_upload(Bucket=b, Key="ro/mp", UploadId=upload)
    assert rig.body("ro/seed") == SEED
    assert not rig.exists("ro/new") and not rig.exists("ro/copy")
    log = rig.worker.log()
    assert f"AccessDenied: bob PutObject s3://{b}/ro/new: no rule of policy.toml allows it (default deny)" in log
    assert f"AccessDenied: bob CopyObject s3://{b}/ro/copy" in log


def test_writes_where_allowed(rig: Rig) -> None:
    bob, b = rig.client("bob"), rig.bucket
    bob.put_object(Bucket=b, Key="rw/put", Body=b"mine")
    assert rig.body("rw/put") == b"mine"
    upload = bob.create_multipart_upload(Bucket=b, Key="rw/mp")["UploadId"]
    part = bob.upload_part(Bucket=b, Key="rw/mp", UploadId=upload, PartNumber=1, Body=b"whole part")
    bob.complete_multipart_upload(Bucket=b, Key="rw/mp", UploadId=upload,
                                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert rig.body("rw/mp") == b"whole part"


def test_copy_needs_read_on_the_source(rig: Rig) -> None:
    bob, b = rig.client("bob"), rig.bucket
    refused(bob.copy_object, Bucket=b, Key="rw/stolen", CopySource={"Bucket": b, "Key": "secret/s"})
    assert not rig.exists("rw/stolen")
    assert f"AccessDenied: bob GetObject s3://{b}/secret/s" in rig.worker.log()
    upload = bob.create_multipart_upload(Bucket=b, Key="rw/parts")["UploadId"]
    refused(bob.upload_part_copy, Bucket=b, Key="rw/parts", UploadId=upload, PartNumber=1,
            CopySource={"Bucket": b, "Key": "secret/s"})
    bob.abort_multipart_upload(Bucket=b, Key="rw/parts", UploadId=upload)
    bob.copy_object(Bucket=b, Key="rw/copied", CopySource={"Bucket": b, "Key": "ro/seed"})  # read on ro/ suffices
    assert rig.body("rw/copied") == SEED


def test_a_user_not_allowed_to_list_cannot_list(rig: Rig) -> None:
    b = rig.bucket
    rita, carol = rig.client("rita"), rig.client("carol")
    listed = rita.list_objects_v2(Bucket=b, Prefix="ro/")  # the group declared in the policy file
    assert [o["Key"] for o in listed["Contents"]] == ["ro/seed"]
    assert rita.get_object(Bucket=b, Key="ro/seed")["Body"].read() == SEED
    refused(rita.list_objects_v2, Bucket=b)  # the whole bucket: no rule covers it
    refused(rita.list_objects_v2, Bucket=b, Prefix="secret/")
    refused(rita.list_objects, Bucket=b)
    refused(carol.list_objects_v2, Bucket=b, Prefix="ro/")
    refused(carol.get_object, Bucket=b, Key="ro/seed")
    refused(rig.client("bob").list_buckets)
    assert b in [bucket["Name"] for bucket in rig.client("alice").list_buckets()["Buckets"]]


def test_anonymous_is_refused_where_not_allowed(rig: Rig) -> None:
    anonymous, b = rig.client(None), rig.bucket
    assert anonymous.get_object(Bucket=b, Key="public/p")["Body"].read() == PUBLIC
    refused(anonymous.get_object, Bucket=b, Key="ro/seed")
    refused(anonymous.head_object, Bucket=b, Key="secret/s")
    refused(anonymous.put_object, Bucket=b, Key="public/p", Body=b"defaced")
    refused(anonymous.list_objects_v2, Bucket=b, Prefix="public/")
    assert rig.body("public/p") == PUBLIC
    assert f"AccessDenied: anonymous GetObject s3://{b}/ro/seed" in rig.worker.log()


def test_delete_objects_deletes_the_allowed_keys_and_refuses_the_rest(rig: Rig) -> None:
    bob, b = rig.client("bob"), rig.bucket
    for key in ("rw/d1", "rw/d2"):
        bob.put_object(Bucket=b, Key=key, Body=b"doomed")
    answer = bob.delete_objects(Bucket=b, Delete={"Objects": [
        {"Key": "rw/d1"}, {"Key": "ro/seed"}, {"Key": "rw/d2"}, {"Key": "secret/s"}]})
    assert sorted(d["Key"] for d in answer["Deleted"]) == ["rw/d1", "rw/d2"]
    assert sorted((e["Key"], e["Code"]) for e in answer["Errors"]) == [
        ("ro/seed", "AccessDenied"), ("secret/s", "AccessDenied")]
    assert not rig.exists("rw/d1") and not rig.exists("rw/d2")
    assert rig.body("ro/seed") == SEED and rig.body("secret/s") == SECRET
    assert f"AccessDenied: bob DeleteObjects s3://{b}/ro/seed (and 1 more)" in rig.worker.log()
    quiet = bob.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "secret/s"}], "Quiet": True})
    assert [(e["Key"], e["Code"]) for e in quiet["Errors"]] == [("secret/s", "AccessDenied")]


def test_the_cli_answers_what_the_worker_does(rig: Rig) -> None:
    def check(*args: str) -> tuple[int, str]:
        done = subprocess.run([sys.executable, "-m", "proxy.cli.main", "policy", "check", "--config",
                               str(rig.config), *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
        return done.returncode, done.stdout
    b = rig.bucket
    code, out = check("--user", "bob", "--action", "write", f"s3://{b}/ro/new")
    assert code == 1 and out.startswith(f"denied: bob write s3://{b}/ro/new (CreateBucket, PutObject, CopyObject): "
                                        "no rule of policy.toml allows it (default deny)")
    code, out = check("--user", "rita", "--action", "read", f"s3://{b}/ro/seed")
    assert code == 0 and f"policy.toml rules.2 (allow user:bob, group:readers read, list on s3://{b}/ro/*)" in out
    code, out = check("--user", "zed", "--group", "readers", "--action", "ListObjectsV2", f"s3://{b}/ro/")
    assert code == 0 and out.startswith(f"allowed: zed ListObjectsV2 s3://{b}/ro/ (ListObjectsV2): policy.toml rules.2")
    code, out = check("--user", "zed", "--group", "readers", "--action", "ListObjectsV2", f"s3://{b}/")
    assert code == 1 and out.startswith("denied: zed ListObjectsV2")
    code, out = check("--action", "read", f"s3://{b}/public/p")
    assert code == 0
    assert out.startswith(f"allowed: anonymous read s3://{b}/public/p (GetObject, HeadObject, GetObjectAttributes)")


# ---- groups from OIDC tokens ------------------------------------------------------------------------------------

OIDC_POLICY = """
[[rules]]
principals = ["group:ml"]
bucket = "teams"
prefix = "ml/"
actions = ["read", "list", "write"]

[[rules]]
principals = ["group:ops"]
bucket = "teams"
actions = ["read"]
"""


@pytest.fixture(scope="module")
def oidc_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, SigningKey]]:
    workdir = tmp_path_factory.mktemp("policy-oidc")
    key = SigningKey("RS256", "rsa-1")
    write_jwks(workdir / "jwks.json", key)
    (workdir / "policy.toml").write_text(OIDC_POLICY)
    (workdir / "s3cache.toml").write_text(
        f'[auth]\nmode = "oidc"\noidc_jwks = "{workdir / "jwks.json"}"\noidc_issuer = "{ISSUER}"\n'
        f'oidc_audience = "{AUDIENCE}"\noidc_user_claim = "preferred_username"\n'
        f'policy_file = "{workdir / "policy.toml"}"\n')
    for key_path, body in (("ml/model.bin", SEED), ("ops/runbook.txt", SECRET)):
        (workdir / "data" / "teams" / key_path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / "data" / "teams" / key_path).write_bytes(body)
    worker = Worker(["--config", str(workdir / "s3cache.toml"), "--data", str(workdir / "data")], workdir).start()
    yield worker, key
    worker.stop()


def token_client(worker: Worker, key: SigningKey, user: str, groups: list[str]) -> Any:
    """boto3 carrying a token as its session token (the access key and secret mean nothing)."""
    return boto3.client("s3", endpoint_url=worker.url, region_name="us-east-1", aws_access_key_id=f"any-{user}",
                        aws_secret_access_key="whatever", aws_session_token=key.token(user, groups=groups),
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def test_groups_from_oidc_tokens_decide(oidc_rig: tuple[Worker, SigningKey]) -> None:
    worker, key = oidc_rig
    ml = token_client(worker, key, "mia", ["ml"])
    assert ml.get_object(Bucket="teams", Key="ml/model.bin")["Body"].read() == SEED
    ml.put_object(Bucket="teams", Key="ml/new.bin", Body=b"trained")
    assert [o["Key"] for o in ml.list_objects_v2(Bucket="teams", Prefix="ml/")["Contents"]] == \
        ["ml/model.bin", "ml/new.bin"]
    refused(ml.get_object, Bucket="teams", Key="ops/runbook.txt")
    ops = token_client(worker, key, "otto", ["ops"])
    assert ops.get_object(Bucket="teams", Key="ops/runbook.txt")["Body"].read() == SECRET
    assert ops.get_object(Bucket="teams", Key="ml/new.bin")["Body"].read() == b"trained"
    refused(ops.put_object, Bucket="teams", Key="ml/new.bin", Body=b"overwritten")
    nobody = token_client(worker, key, "nina", ["finance"])
    refused(nobody.get_object, Bucket="teams", Key="ml/model.bin")
    assert ops.get_object(Bucket="teams", Key="ml/new.bin")["Body"].read() == b"trained"
    log = worker.log()
    assert "AccessDenied: otto PutObject s3://teams/ml/new.bin: no rule of policy.toml allows it" in log
    assert "AccessDenied: nina GetObject s3://teams/ml/model.bin" in log
