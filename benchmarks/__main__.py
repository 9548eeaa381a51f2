"""The benchmarks' entry point: ``python -m benchmarks run [--quick]`` (from the repository root).

    run   every workload of "never slower than the origin" side by side (benchmarks/suite/)

The single-purpose benchmarks (cold_warm.py, data_paths.py, ...) run as scripts of their own.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    from benchmarks.suite import run

    run.add_arguments(commands.add_parser("run", help=run.__doc__.splitlines()[0] if run.__doc__ else None))
    args = parser.parse_args(argv)
    return run.main(args)


if __name__ == "__main__":
    sys.exit(main())
