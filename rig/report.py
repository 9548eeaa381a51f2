"""What the benchmarks measure with and write: sizes, a process's memory and CPU from /proc, and the report files.

Reports go to ``benchmarks/results/<name>-<date>.md`` with a header naming the machine and the commit.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from rig.processes import ROOT

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def size_text(size: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"


def parse_size(text: str) -> int:
    scales = {"K": KiB, "M": MiB, "G": GiB, "T": GiB << 10}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    return int(float(text[:-1]) * scales[text[-1]]) if text and text[-1] in scales else int(text)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and friends of a process, in bytes."""
    values = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name.startswith("Vm") and rest.strip().endswith("kB"):
                values[name] = int(rest.split()[0]) * 1024
    return values


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process (all its threads) has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs 5); False when the kernel refuses."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def header(title: str, notes: Iterable[str]) -> list[str]:
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return [
        f"# {title}",
        "",
        f"- machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        f"- commit: {commit}; date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        *[f"- {note}" for note in notes],
        "",
    ]


def write_report(name: str, text: str) -> Path:
    print(text)
    out = ROOT / "benchmarks" / "results" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(f"written to {out.relative_to(ROOT)}")
    return out


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def machine() -> dict[str, str]:
    """What a result depends on: cores, CPU model, kernel, Python, and how busy the machine was."""
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return {"nproc": str(len(os.sched_getaffinity(0))), "cpu": model or platform.processor() or "unknown",
            "kernel": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "load average": load}


def commit() -> str:
    """The commit measured, with -dirty when the work tree differs from it."""
    return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip() or "unknown"


class ProcessMeter:
    """CPU time and peak RSS of processes over a stretch of work: a context manager.

    On entry each process's VmHWM is reset (clear_refs) and its CPU time noted; on exit ``cpu_s`` is the CPU
    (user + system, every thread) they used in between, summed, and ``peak_rss`` the largest VmHWM among them
    (since entry when the reset worked, ``hwm_reset``; since the process started otherwise)."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.pids = list(pids)
        self.cpu_s, self.peak_rss, self.hwm_reset = 0.0, 0, False
        self._cpu: dict[int, float] = {}

    def __enter__(self) -> ProcessMeter:
        self.hwm_reset = all([reset_peak_rss(pid) for pid in self.pids])
        self._cpu = {pid: cpu_seconds(pid) for pid in self.pids}
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_s = sum(cpu_seconds(pid) - before for pid, before in self._cpu.items())
        self.peak_rss = max((proc_status(pid).get("VmHWM", 0) for pid in self.pids), default=0)
