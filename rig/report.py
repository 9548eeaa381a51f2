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
