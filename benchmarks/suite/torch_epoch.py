"""A PyTorch epoch over a dataset of small objects with s3torchconnector, cold and warm, vs the origin directly.

``S3MapDataset.from_prefix`` (the AWS CRT client; it lists the prefix without a delimiter, then reads every
object) through a ``DataLoader`` with two worker processes, shuffled, as tests/clients/test_torch.py
configures it against a local endpoint: once against the throttled origin directly, then through the worker
twice (cold: every object a miss; warm). An epoch is timed from building the dataset to its last sample,
and every sample's size is checked.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.suite.context import Context
from benchmarks.suite.rows import Row
from rig.bench import BUCKET, CREDENTIALS
from rig.report import MiB, ProcessMeter

PREFIX = "torch/"


def key_and_size(reader: Any) -> tuple[str, int]:
    """The dataset transform: (key, bytes read). Module level, so DataLoader workers can use it."""
    return reader.key, len(reader.read())


def keep(sample: Any) -> Any:
    return sample


@contextmanager
def crt_env() -> Iterator[None]:
    """The CRT client takes its credentials from the environment, like every AWS SDK."""
    values = {"AWS_ACCESS_KEY_ID": CREDENTIALS["AWS_ACCESS_KEY_ID"],
              "AWS_SECRET_ACCESS_KEY": CREDENTIALS["AWS_SECRET_ACCESS_KEY"], "AWS_REGION": "us-east-1",
              "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
              "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_SESSION_TOKEN": None, "AWS_PROFILE": None}
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def epoch(endpoint: str, expected: dict[str, int]) -> tuple[float, int]:
    """(seconds, bytes) of one epoch over the prefix."""
    with warnings.catch_warnings():  # the CPU wheel works without NumPy, and says so on import
        warnings.filterwarnings("ignore", "Failed to initialize NumPy")
        import s3torchconnector as s3tc
        from torch.utils.data import DataLoader
    began = time.perf_counter()
    dataset = s3tc.S3MapDataset.from_prefix(f"s3://{BUCKET}/{PREFIX}", region="us-east-1", endpoint=endpoint,
                                            s3client_config=s3tc.S3ClientConfig(force_path_style=True),
                                            transform=key_and_size)
    loader = DataLoader(dataset, batch_size=None, shuffle=True, num_workers=2, collate_fn=keep)
    samples = dict(loader)
    elapsed = time.perf_counter() - began
    if samples != expected:
        wrong = [k for k in expected if samples.get(k) != expected[k]]
        raise AssertionError(f"{len(samples)} samples of {len(expected)}, {len(wrong)} wrong, e.g. {wrong[:3]}")
    return elapsed, sum(samples.values())


def run(ctx: Context) -> list[Row]:
    stage, relay = ctx.stage, ctx.stage.relay
    count, size = ctx.profile.torch_objects, ctx.profile.torch_object_bytes
    objects = {f"{PREFIX}{i:05d}/sample.bin": os.urandom(size - (i * 389) % 4096) for i in range(count)}
    stage.put_many(objects)
    expected = {key: len(data) for key, data in objects.items()}
    workload = f"torch epoch {count} x ~{size >> 10}KiB"
    rows = []
    with crt_env():
        epoch(stage.origin_url, expected)  # imports, moto's first touch: not timed
        relay.reset()
        seconds, received = epoch(stage.origin_url, expected)
        direct = Row(workload, "direct, S3MapDataset + DataLoader(num_workers=2)", "direct", "samples/s",
                     count / seconds, origin=relay.tally(), objects=count, requests=count, mib=received / MiB,
                     note=f"epoch {seconds:.2f} s")
        rows.append(direct)
        for state in ("cold", "warm"):
            relay.reset()
            with ProcessMeter([ctx.worker_pid]) as meter:
                seconds, received = epoch(ctx.worker.url, expected)
            rows.append(Row(workload, f"s3cache {state}, same loader", f"torch-{state}", "samples/s", count / seconds,
                            "direct", direct.value, origin=relay.tally(), objects=count, requests=count,
                            mib=received / MiB, note=f"epoch {seconds:.2f} s").metered(meter))
    return rows
