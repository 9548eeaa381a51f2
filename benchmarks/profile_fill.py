"""Where a cold byte goes: py-spy samples a worker while it serves cold 64 MiB reads, then the same reads warm.

One worker in front of an origin on 127.0.0.1 (an s3cache directory server, no added latency: the worker's
own CPU is what is measured). For each pass (cold: every read misses; warm: the same objects again) it
reports the worker's CPU per MiB (from /proc) and, from py-spy's samples, the functions where the worker's
time went: own time (the frame on top of the stack) and total time (anywhere on it), as shares of samples.
The summary is written to benchmarks/results/fill_profile-<label>-<date>.md with the machine and commit.

    python benchmarks/profile_fill.py [--label before] [--objects 6] [--size 64M]

Needs py-spy (pip install py-spy) and root (or ptrace permission) to sample another process.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rig.bench import BUCKET, Rig
from rig.report import MiB, cpu_seconds, fmt, header, parse_size, write_report

TOP = 14
# Frames under every sample of a thread: they say nothing of where the time went.
_SCAFFOLDING = {"<module> (main.py)", "main (main.py)", "serve (main.py)", "_run_code (<frozen runpy>)",
                "_run_module_as_main (<frozen runpy>)", "asyncio_run (_compat.py)", "Runner.run (runners.py)",
                "Server.run (server.py)", "Thread._bootstrap (threading.py)", "Thread._bootstrap_inner (threading.py)",
                "Thread.run (threading.py)", "_worker (thread.py)", "_WorkItem.run (thread.py)",
                "S3App.__call__ (app.py)", "RequestResponseCycle.run_asgi (httptools_impl.py)"}


def _read_all(url: str, keys: list[str], size: int) -> None:
    with httpx.Client(timeout=600) as client:
        for key in keys:
            got = 0
            with client.stream("GET", f"{url}/{BUCKET}/{key}") as response:
                response.raise_for_status()
                for chunk in response.iter_raw(1 << 20):
                    got += len(chunk)
            assert got == size, (key, got)


def _sampled(pid: int, out: Path, action: object) -> None:
    """Run action() while py-spy records pid into out (raw collapsed stacks)."""
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
                            "--output", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        action()  # type: ignore[operator]
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def _frame(frame: str) -> str:
    """'send (uvicorn/protocols/http/httptools_impl.py:512)' -> 'send (httptools_impl.py)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.split(':')[0]).name})" if where else name


def summarise(raw: Path) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames) - _SCAFFOLDING:
            total[name] += count
    return samples, own.most_common(TOP), total.most_common(TOP)


def _table(title: str, samples: int, rows: list[tuple[str, int]]) -> list[str]:
    lines = [f"| {title} | share of samples |", "|---|---|"]
    lines += [f"| `{name}` | {100 * count / max(1, samples):.1f}% |" for name, count in rows]
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="now", help="a name for this run (before/after a change)")
    parser.add_argument("--objects", type=int, default=6)
    parser.add_argument("--size", default="64M")
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        sys.exit("py-spy is not installed: pip install py-spy")
    size = parse_size(args.size)
    scratch = Path(tempfile.mkdtemp(prefix="s3cache-profile-"))
    keys = [f"profile/{n}" for n in range(args.objects)]
    lines = header(f"Where a cold byte goes ({args.label})", [
        f"{args.objects} objects of {args.size}, read once cold (every block a miss) and once warm, one at a time,",
        "through one worker over a directory origin on 127.0.0.1 with no added latency; py-spy at 250 Hz."])
    with Rig(latency_s=0.0) as rig:
        rig.put_random(keys[0], size)
        for key in keys[1:]:
            rig.copy(keys[0], key)
        rig.prime(keys)
        worker = rig.worker("4M", "8G", "lru")
        assert worker.proc is not None
        pid = worker.proc.pid
        mib = args.objects * size / MiB
        for label in ("cold", "warm"):
            before = cpu_seconds(pid)
            out = scratch / f"{label}.txt"
            _sampled(pid, out, lambda: _read_all(worker.url, keys, size))
            cpu_ms = (cpu_seconds(pid) - before) * 1000
            samples, own, total = summarise(out)
            lines += [f"## {label}: {fmt(cpu_ms / mib, 2)} ms of worker CPU per MiB ({samples} samples)", ""]
            lines += _table("own time (top of the stack)", samples, own)
            lines += _table("total time (anywhere on the stack)", samples, total)
    shutil.rmtree(scratch, ignore_errors=True)
    text = "\n".join(lines)
    print(text)
    print(write_report(f"fill_profile-{args.label}", text))


if __name__ == "__main__":
    main()
