"""A Triton-style model repository load, cold and warm through the worker, vs the origin directly.

Triton's S3 filesystem call pattern (tests/clients/test_triton.py replays it call for call): a HeadBucket
before every folder check, ListObjectsV2 by prefix without a delimiter, HeadObject for existence and
modification time, whole-object GETs without Range. A 7-file repository of three models is loaded as the
model repository manager does: the repository is a folder, its models are its sub-folders, each model's
config is checked, read and dated, its versions and files listed, then the model is localized (every file
downloaded). The load is timed and its origin requests are counted by kind.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from benchmarks.suite.context import Context
from benchmarks.suite.rows import Row
from benchmarks.suite.stage import s3
from rig.bench import BUCKET
from rig.report import MiB, ProcessMeter

REPO = "models"


def repository(model_bytes: int) -> dict[str, bytes]:
    return {
        "resnet50/config.pbtxt": b'name: "resnet50"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n',
        "resnet50/labels.txt": "\n".join(f"class-{i}" for i in range(1000)).encode(),
        "resnet50/1/model.onnx": os.urandom(model_bytes),
        "bert/config.pbtxt": b'name: "bert"\nbackend: "python"\n',
        "bert/1/model.py": b"import triton_python_backend_utils as pb_utils\n",
        "bert/1/assets/vocab.txt": os.urandom(230_000),
        "ensemble/config.pbtxt": b'name: "ensemble"\nplatform: "ensemble"\n',
    }


class TritonLoader:
    """Triton's S3FileSystem calls over a boto3 client, for one bucket."""

    def __init__(self, client: Any) -> None:
        self.s3 = client
        self.calls: list[str] = []  # every S3 operation it made, in order
        client.meta.events.register("before-call.s3", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def is_directory(self, prefix: str) -> bool:
        self.s3.head_bucket(Bucket=BUCKET)
        listing = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix.rstrip("/") + "/")
        return bool(listing.get("Contents"))

    def file_exists(self, key: str) -> bool:
        if self.is_directory(key):
            return True
        try:
            self.s3.head_object(Bucket=BUCKET, Key=key)
        except ClientError:
            return False
        return True

    def modification_time(self, key: str) -> float:
        if self.is_directory(key):
            return 0.0
        return float(self.s3.head_object(Bucket=BUCKET, Key=key)["LastModified"].timestamp())

    def contents(self, prefix: str) -> set[str]:
        full = prefix.rstrip("/") + "/"
        found: set[str] = set()
        kwargs: dict[str, Any] = {"Bucket": BUCKET, "Prefix": full}
        while True:
            page = self.s3.list_objects_v2(**kwargs)
            found |= {obj["Key"][len(full):].split("/", 1)[0] for obj in page.get("Contents", []) if obj["Key"] != full}
            if not page.get("IsTruncated"):
                return found
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def subdirs(self, prefix: str) -> set[str]:
        return {item for item in self.contents(prefix) if self.is_directory(f"{prefix}/{item}")}

    def files(self, prefix: str) -> set[str]:
        return {item for item in self.contents(prefix) if not self.is_directory(f"{prefix}/{item}")}

    def read(self, key: str) -> bytes:
        if not self.file_exists(key):
            raise FileNotFoundError(key)
        return bytes(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def localize(self, prefix: str, local: Path) -> int:
        """Download a folder tree, one whole-object GET per file; returns the bytes written."""
        assert self.file_exists(prefix)
        local.mkdir()
        written = 0
        pending = {f"{prefix}/{item}" for item in self.contents(prefix)}
        while pending:
            current, pending = pending, set()
            for remote in sorted(current):
                target = local / remote[len(prefix) + 1:]
                if self.is_directory(remote):
                    target.mkdir()
                    pending |= {f"{remote}/{item}" for item in self.contents(remote)}
                else:
                    data = self.s3.get_object(Bucket=BUCKET, Key=remote)["Body"].read()
                    target.write_bytes(data)
                    written += len(data)
        return written

    def load(self, repo: str, into: Path) -> dict[str, bytes]:
        """Load every model of the repository as Triton's model repository manager does."""
        assert self.is_directory(repo)
        for model in sorted(self.subdirs(repo)):
            base = f"{repo}/{model}"
            assert self.file_exists(f"{base}/config.pbtxt")
            self.read(f"{base}/config.pbtxt")
            assert self.modification_time(f"{base}/config.pbtxt") > 0
            self.subdirs(base)
            self.files(base)
            self.localize(base, into / model)
        return {str(p.relative_to(into)): p.read_bytes() for p in into.rglob("*") if p.is_file()}


def run(ctx: Context) -> list[Row]:
    stage, relay = ctx.stage, ctx.stage.relay
    files = repository(ctx.profile.model_bytes)
    stage.put_many({f"{REPO}/{path}": data for path, data in files.items()})
    total = sum(len(d) for d in files.values())
    workload = f"Triton load, {len(files)} files, {total / MiB:.0f} MiB"
    rows: list[Row] = []
    direct: Row | None = None
    for case, endpoint in (("direct", stage.origin_url), ("s3cache cold", ctx.worker.url),
                           ("s3cache warm", ctx.worker.url)):
        loader = TritonLoader(s3(endpoint))
        calls = loader.calls
        relay.reset()
        with tempfile.TemporaryDirectory(dir=stage.workdir) as into, ProcessMeter([ctx.worker_pid]) as meter:
            began = time.perf_counter()
            loaded = loader.load(REPO, Path(into))
            seconds = time.perf_counter() - began
        if loaded != files:
            raise AssertionError(f"{case}: the loaded repository differs ({sorted(loaded)})")
        key = "triton-" + case.split()[-1]
        row = Row(workload, f"{case}, boto3 replaying Triton ({len(calls)} calls)", key, "s (lower is better)",
                  seconds, "" if direct is None else "direct", direct.value if direct else float("nan"),
                  origin=relay.tally(), objects=len(files), per_what="file", requests=len(calls), mib=total / MiB,
                  note=", ".join(f"{calls.count(n)} {n}" for n in sorted(set(calls))))
        if direct is not None:
            row.metered(meter)
        direct = direct or row
        rows.append(row)
    return rows
