"""PyTorch through s3torchconnector (the AWS CRT client) against the load-balanced cluster, proxy mode.

s3torchconnector never follows a 3xx, so proxy is its data path. ``from_prefix`` lists the prefix without a
delimiter and reads every object with ranged GETs; the checkpoint writer always uploads multipart. Every
sample a DataLoader with two worker processes yields is compared with the bytes written.
"""

from __future__ import annotations

import concurrent.futures
import io
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

with warnings.catch_warnings():  # the CPU wheel works without NumPy, and says so on import
    warnings.filterwarnings("ignore", "Failed to initialize NumPy")
    import s3torchconnector as s3tc
    import torch
    from torch.utils.data import DataLoader

from rig.cluster import Cluster
from tests.clients.conftest import BLOCK, payload, sha256

pytestmark = pytest.mark.slow

USER = "torch"
MiB = 1 << 20
COUNT = 300
PREFIX = "train/"


def sample_size(i: int) -> int:
    """Mostly small samples of assorted sizes; every 60th spans several cache blocks."""
    return 2 * BLOCK + 12345 + i if i % 60 == 7 else 1 + (i * 389) % 6000


def key_and_bytes(reader: Any) -> tuple[str, bytes]:
    """The dataset transform: (key, every byte of the object). Module level, so DataLoader workers can use it."""
    return reader.key, reader.read()


def keep(sample: Any) -> Any:
    return sample


@pytest.fixture(scope="module")
def dataset(cluster: Cluster) -> Iterator[tuple[Cluster, str, dict[str, bytes]]]:
    bucket = cluster.bucket("torch")
    objects = {f"{PREFIX}{i:04d}/sample.bin": payload(sample_size(i), f"torch-{i}") for i in range(COUNT)}
    objects["elsewhere/not-in-prefix.bin"] = b"outside the prefix"
    s3 = cluster.boto3()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), objects.items()))
    yield cluster, bucket, {k: v for k, v in objects.items() if k.startswith(PREFIX)}


@pytest.fixture
def crt_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The CRT client takes its credentials from the environment, like every AWS SDK."""
    for name, value in {"AWS_ACCESS_KEY_ID": USER, "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-east-1",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def config(**kwargs: Any) -> Any:
    return s3tc.S3ClientConfig(force_path_style=True, **kwargs)


def check_all(samples: list[tuple[str, bytes]], objects: dict[str, bytes]) -> None:
    keys = [k for k, _ in samples]
    assert len(keys) == len(set(keys)) == len(objects), f"{len(keys)} samples, {len(set(keys))} distinct"
    assert set(keys) == set(objects)
    bad = [k for k, data in samples if sha256(data) != sha256(objects[k])]
    assert bad == [], f"{len(bad)} samples differ, e.g. {bad[:3]}"


@pytest.mark.usefixtures("crt_env")
@pytest.mark.parametrize("reader", ["sequential", "range_based"])
def test_map_dataset_through_dataloader_workers(dataset: tuple[Cluster, str, dict[str, bytes]], reader: str) -> None:
    cluster, bucket, objects = dataset
    ds = s3tc.S3MapDataset.from_prefix(f"s3://{bucket}/{PREFIX}", region="us-east-1", endpoint=cluster.url,
                                       s3client_config=config(), transform=key_and_bytes,
                                       reader_constructor=getattr(s3tc.S3ReaderConstructor, reader)())
    assert len(ds) == COUNT
    loader = DataLoader(ds, batch_size=None, shuffle=True, num_workers=2, collate_fn=keep)
    check_all(list(loader), objects)
    mine = cluster.access(USER, bucket)
    reads = [a for a in mine if a.operation == "GetObject"]
    assert {a.status for a in reads} <= {200, 206} and len(reads) >= COUNT
    assert len({a.worker for a in reads}) == 3, "nginx spread the reads over the three workers"
    assert all(a.status != 307 for a in mine)


@pytest.mark.usefixtures("crt_env")
def test_iterable_dataset_sharded_over_dataloader_workers(dataset: tuple[Cluster, str, dict[str, bytes]]) -> None:
    cluster, bucket, objects = dataset
    ds = s3tc.S3IterableDataset.from_prefix(f"s3://{bucket}/{PREFIX}", region="us-east-1", endpoint=cluster.url,
                                            s3client_config=config(), transform=key_and_bytes, enable_sharding=True)
    loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=keep)
    check_all(list(loader), objects)
    # and in this process, without a DataLoader
    check_all(list(ds), objects)


@pytest.mark.usefixtures("crt_env")
def test_checkpoint_save_and_load_multipart(dataset: tuple[Cluster, str, dict[str, bytes]]) -> None:
    cluster, bucket, _ = dataset
    checkpoint = s3tc.S3Checkpoint(region="us-east-1", endpoint=cluster.url,
                                   s3client_config=config(part_size=5 * MiB))
    generator = torch.Generator().manual_seed(5)
    state = {"layer.weight": torch.randn(1800, 1000, generator=generator),  # ~7 MiB
             "layer.bias": torch.randn(1000, generator=generator),
             "embedding": torch.randint(0, 1 << 30, (600, 1000), generator=generator),  # ~4.6 MiB
             "step": torch.tensor(1234)}
    # torch.save straight into the S3 writer, torch.load straight from the S3 reader
    uri = f"s3://{bucket}/checkpoints/epoch-1.pt"
    with checkpoint.writer(uri) as writer:
        torch.save(state, writer)
    with checkpoint.reader(uri) as reader:
        loaded = torch.load(reader, weights_only=True)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in state.items())
    # byte for byte: a serialized state dict written in uneven pieces reads back identical
    buffer = io.BytesIO()
    torch.save(state, buffer)
    blob = buffer.getvalue()
    uri = f"s3://{bucket}/checkpoints/epoch-2.pt"
    with checkpoint.writer(uri) as writer:
        for start in range(0, len(blob), 3 * MiB + 17):
            writer.write(blob[start:start + 3 * MiB + 17])
    with checkpoint.reader(uri) as reader:
        assert sha256(reader.read()) == sha256(blob)
    s3 = cluster.boto3()
    got = s3.get_object(Bucket=bucket, Key="checkpoints/epoch-2.pt")
    assert sha256(got["Body"].read()) == sha256(blob)
    parts = -(-len(blob) // (5 * MiB))
    assert parts >= 3 and got["ETag"].endswith(f'-{parts}"'), (got["ETag"], len(blob))
    ops = [a.operation for a in cluster.access(USER, bucket) if a.key.startswith("checkpoints/")]
    assert ops.count("CreateMultipartUpload") == 2 and ops.count("CompleteMultipartUpload") == 2
    assert ops.count("UploadPart") >= 2 * parts - 1
    assert "PutObject" not in ops
