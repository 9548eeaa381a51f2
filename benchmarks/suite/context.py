"""What every workload is handed: the sizes of this run (quick or full), the stage, the worker, nginx."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.suite.stage import Stage, StaticNginx
from rig.processes import Worker
from rig.report import GiB, MiB


@dataclass(frozen=True)
class Profile:
    name: str
    small_objects: int  # objects per small size, each read direct, cold and warm by the 16-thread pool
    wrk_seconds: int  # each wrk row (warm small objects; nginx, origin)
    large_sizes: tuple[int, ...]  # large objects: one GetObject and the transfer manager, cold and warm
    path_seconds: float  # each data-path row (local, proxied, redirected)
    torch_objects: int  # objects of the s3torchconnector dataset
    torch_object_bytes: int
    model_bytes: int  # the largest file of the Triton repository
    fanin_bytes: int  # the object 64 readers read at once (1 MiB blocks)
    rss_bytes: int  # the object streamed for peak RSS; 0 = not run


QUICK = Profile("quick", small_objects=400, wrk_seconds=2, large_sizes=(256 * MiB,), path_seconds=2.0,
                torch_objects=300, torch_object_bytes=64 << 10, model_bytes=24 * MiB, fanin_bytes=16 * MiB,
                rss_bytes=0)
FULL = Profile("full", small_objects=2000, wrk_seconds=5, large_sizes=(256 * MiB, GiB), path_seconds=4.0,
               torch_objects=3000, torch_object_bytes=64 << 10, model_bytes=96 * MiB, fanin_bytes=64 * MiB,
               rss_bytes=2 * GiB)


@dataclass
class Context:
    profile: Profile
    stage: Stage
    worker: Worker  # the one worker of the single-worker workloads (small, large, torch, Triton)
    nginx: StaticNginx
    latency_ms: float
    mbps: float  # the relay's per-connection cap, MB/s (10^6 bytes); 0 = none

    @property
    def worker_pid(self) -> int:
        assert self.worker.proc is not None
        return self.worker.proc.pid
