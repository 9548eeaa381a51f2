"""The suite's PNG plots (matplotlib, Agg backend): targets' margins, small-object latencies, every workload's rows."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.suite.rows import Judged, Row

MET, MISSED, REFERENCE, MEASURED = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0"


def targets(judged: list[Judged], path: Path, title: str) -> bool:
    """Each judged ratio target's measured / required (log scale; right of 1 is met)."""
    items = [(j, j.target.margin(j.row)) for j in judged if j.target.margin is not None]
    items = [(j, m) for j, m in items if m and not math.isnan(m) and not math.isinf(m)]
    if not items:
        return False
    fig, ax = plt.subplots(figsize=(13, 0.55 * len(items) + 1.6))
    labels = [textwrap.fill(j.target.text, 55) + "\n" + textwrap.shorten(f"{j.row.workload}: {j.row.case}", 55)
              for j, _ in items]
    margins = [m for _, m in items]
    ax.barh(range(len(items)), margins, color=[MET if j.met else MISSED for j, _ in items])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(items)), labels, fontsize=7)
    ax.invert_yaxis()
    for i, (j, m) in enumerate(items):
        ax.text(m, i, f" {j.measured}", va="center", fontsize=7)
    ax.set_xlabel("measured / required (> 1: met)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def latency(rows: list[Row], path: Path, title: str) -> bool:
    """p50/p90/p99 of the small-object rows that have per-request latencies: direct, cold, warm."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        if row.workload.startswith("small") and row.latencies_s:
            groups.setdefault(row.workload, []).append(row)
    if not groups:
        return False
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4.2), squeeze=False)
    for ax, (workload, members) in zip(axes[0], groups.items(), strict=True):
        width = 0.8 / len(members)
        for i, row in enumerate(members):
            p = row.p()
            xs = [q + i * width for q in range(3)]
            ax.bar(xs, [p["p50"], p["p90"], p["p99"]], width, label=row.case)
        ax.set_xticks([q + 0.4 - width / 2 for q in range(3)], ["p50", "p90", "p99"])
        ax.set_ylabel("ms per GetObject")
        ax.set_title(workload, fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def workloads(rows: list[Row], path: Path, title: str) -> bool:
    """One panel per workload and unit: each case's value, references grey, met green, missed red."""
    panels: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if not math.isnan(row.value):
            members = panels.setdefault((row.workload, row.unit), [])
            members.append(row)
            if row.reference and not math.isnan(row.reference_value) and \
                    all(other.case != row.reference and not other.case.startswith(row.reference) for other in rows):
                # a reference measured inside the row (CPU per warm MiB): a grey bar of its own
                members.append(Row(row.workload, row.reference, "", row.unit, row.reference_value))
    if not panels:
        return False
    columns = 3
    lines = -(-len(panels) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(6 * columns, 2.6 * lines), squeeze=False)
    for ax, ((workload, unit), members) in zip(axes.flat, panels.items(), strict=False):
        colors = [REFERENCE if not r.reference else MISSED if "missed" in r.verdicts else MET if r.verdicts
                  else MEASURED for r in members]
        values = [r.value for r in members]
        ax.barh(range(len(members)), values, color=colors)
        if min(values) > 0 and max(values) / min(values) > 50:
            ax.set_xscale("log")
        ax.set_yticks(range(len(members)), [textwrap.shorten(r.case, 60) for r in members], fontsize=6)
        ax.invert_yaxis()
        ax.set_xlabel(unit, fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(workload, fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title + "  (grey: reference; green/red: target met/missed; blue: no target)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
