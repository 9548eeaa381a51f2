"""`s3cache check --cache-dir DIR`: verify a stopped worker's block files and drop what cannot be trusted."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cache.blocks.store import BlockStore


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser("check", help="verify a block cache directory: drop orphan, partial and corrupt "
                                "files", description="Verify every block file of a (stopped) worker's cache "
                                "directory against its checksums; drop orphans, partial writes and corrupt blocks.")
    check.add_argument("--cache-dir", required=True, metavar="DIR", help="the worker's cache directory")


def run(args: argparse.Namespace) -> int:
    directory = Path(args.cache_dir)
    if not directory.is_dir():
        print(f"s3cache: {directory} is not a directory", file=sys.stderr)
        return 2
    store = BlockStore(directory, capacity_bytes=1 << 62)
    store.load()
    report = store.check()
    print(f"{directory}: {report.kept} blocks good, dropped {report.dropped_corrupt} corrupt, "
          f"{report.dropped_partial} partial, {report.dropped_orphan} orphan files")
    return 0
