"""The soak's load: a locust scenario mix run headless as a library, one JSON line of window statistics on stdout
every ``--sample-s`` seconds (``benchmarks/soak.py`` starts it in a process of its own: locust patches the
standard library for gevent, which the rig's subprocesses and threads should not inherit).

The mix, per user, weighted like a training cluster's traffic:

- 70: GET of a small object (16 KiB), by Zipf popularity (s = 1.1) over ``--small`` objects;
- 20: a 1 MiB ranged GET at a random offset of one of the large objects;
- 6: a ListObjectsV2 page under a random small-object prefix;
- 3: a PUT of a 64 KiB object under ``scratch/``;
- 1: a DELETE of one of this user's scratch objects.

    python -m benchmarks.soak_load --host URL --seconds N --users U --small N --large N --large-bytes B
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import sys
import time
from typing import Any

import gevent
from locust import FastHttpUser, constant, task
from locust.env import Environment

from benchmarks.soak_objects import BUCKET, large_key, small_key

RANGE_BYTES = 1 << 20
PUT_BYTES = 64 << 10
ZIPF_S = 1.1


class Window:
    """Requests seen since the last sample: latencies (ms) and failures by kind."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.failures: dict[str, int] = {}
        self.all_ms: list[float] = []  # the whole run's, for its overall percentiles
        self.requests = self.errors = 0

    def on_request(self, request_type: str, name: str, response_time: float, exception: BaseException | None,
                   **_: Any) -> None:
        self.latencies_ms.append(response_time)
        if exception is not None:
            kind = f"{request_type} {name}: {str(exception)[:80]}"
            self.failures[kind] = self.failures.get(kind, 0) + 1

    def take(self) -> dict[str, Any]:
        samples, self.latencies_ms = sorted(self.latencies_ms), []
        failures, self.failures = self.failures, {}
        self.all_ms += samples
        self.requests += len(samples)
        self.errors += sum(failures.values())
        return {"time": time.time(), "requests": len(samples), "errors": sum(failures.values()),
                "p50_ms": rank(samples, 0.50), "p99_ms": rank(samples, 0.99), "failures": failures}

    def overall(self) -> dict[str, Any]:
        samples = sorted(self.all_ms)
        return {"final": True, "requests": self.requests, "errors": self.errors, "p50_ms": rank(samples, 0.50),
                "p99_ms": rank(samples, 0.99)}


def rank(samples: list[float], p: float) -> float:
    """The p-quantile of sorted samples by nearest rank; 0 for none."""
    return samples[max(0, math.ceil(p * len(samples)) - 1)] if samples else 0.0


def user_class(small: int, large: int, large_bytes: int) -> type[FastHttpUser]:
    weights = list(itertools.accumulate(1 / (rank + 1) ** ZIPF_S for rank in range(small)))
    payload = os.urandom(PUT_BYTES)

    class SoakUser(FastHttpUser):
        wait_time = constant(0)

        def on_start(self) -> None:
            self.scratch: list[str] = []
            self.rng = random.Random()

        @task(70)
        def hot_small(self) -> None:
            index = self.rng.choices(range(small), cum_weights=weights)[0]
            self.client.get(f"/{BUCKET}/{small_key(index)}", name="GET small")

        @task(20)
        def ranged_large(self) -> None:
            start = self.rng.randrange(0, large_bytes - RANGE_BYTES)
            self.client.get(f"/{BUCKET}/{large_key(self.rng.randrange(large))}", name="GET 1 MiB range",
                            headers={"range": f"bytes={start}-{start + RANGE_BYTES - 1}"})

        @task(6)
        def listing(self) -> None:
            prefix = f"small/{self.rng.randrange(max(1, small // 100)):03d}/"
            self.client.get(f"/{BUCKET}?list-type=2&prefix={prefix}&max-keys=100", name="LIST")

        @task(3)
        def put(self) -> None:
            key = f"scratch/{os.urandom(8).hex()}"
            self.client.put(f"/{BUCKET}/{key}", data=payload, name="PUT")
            self.scratch.append(key)

        @task(1)
        def delete(self) -> None:
            if self.scratch:
                self.client.delete(f"/{BUCKET}/{self.scratch.pop(0)}", name="DELETE")

    return SoakUser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--small", type=int, required=True)
    parser.add_argument("--large", type=int, required=True)
    parser.add_argument("--large-bytes", type=int, required=True)
    args = parser.parse_args(argv)
    env = Environment(user_classes=[user_class(args.small, args.large, args.large_bytes)], host=args.host)
    window = Window()
    env.events.request.add_listener(window.on_request)
    runner = env.create_local_runner()

    def sample() -> None:
        while True:
            gevent.sleep(args.sample_s)
            print(json.dumps(window.take()), flush=True)

    sampler = gevent.spawn(sample)
    runner.start(args.users, spawn_rate=args.users)
    gevent.spawn_later(args.seconds, runner.quit)
    runner.greenlet.join()
    sampler.kill()
    print(json.dumps(window.take()), flush=True)
    print(json.dumps(window.overall()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
