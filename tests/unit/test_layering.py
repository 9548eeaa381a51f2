"""The wings and the one-way arrows between them, checked by reading every import of the shipped code with ast.

Wings from the top down; a module may import its own wing and any wing below it, never one above:

    proxy.cli          clients of a worker (serve, sidecar, load, status, check)
    proxy              the S3 front's composition: app, stack (the composition root), operations, peer, redirect
    proxy.handlers     one module per operation family
    proxy (base)       the request, responses, XML, errors, auth, bodies, conditions, headers, policy, metrics
    cache.blocks       the block cache: disk store, eviction, reader, metadata
    cache.cluster      registry, placement, routing, the peer client
    cache.storage      the under-storage protocol, the namespace, the directory and origin backends
    cache.s3           the S3 vocabulary, no I/O: errors, names, model, listing, xml
    cache (leaves)     fileio, bounded: know nothing of S3
    conf               settings

Nothing shipped imports tests, benchmarks or the rig, and the cache never imports starlette or uvicorn.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("proxy", "cache", "conf")
NEVER = {"tests", "benchmarks", "rig"}
NEVER_IN = {"cache": {"starlette", "uvicorn"}, "conf": {"starlette", "uvicorn"}}

PROXY_COMPOSITION = {"proxy.app", "proxy.stack", "proxy.operations", "proxy.peer", "proxy.redirect"}
# (wing, rank): lower ranks sit higher; a module's wing is the longest prefix that names it.
WINGS: list[tuple[str, int]] = [
    ("proxy.cli", 0),
    ("proxy:composition", 1),
    ("proxy.handlers", 2),
    ("proxy", 3),
    ("cache.blocks", 4),
    ("cache.cluster", 5),
    ("cache.storage", 6),
    ("cache.s3", 7),
    ("cache", 8),  # cache.fileio, cache.bounded
    ("conf", 9),
]
RANK = dict(WINGS)


def wing_of(module: str) -> str:
    if module in PROXY_COMPOSITION:
        return "proxy:composition"
    best = ""
    for wing, _ in WINGS:
        if (module == wing or module.startswith(wing + ".")) and len(wing) > len(best):
            best = wing
    return best


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute module names a file imports ("from a.b import c" is a.b.c when that is a module, else a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (root / sub.replace(".", "/")).with_suffix(".py").exists()
                names.add(sub if is_module else node.module)
    return names


def violations(root: Path = ROOT, packages: tuple[str, ...] = SHIPPED) -> list[str]:
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            source = module_name(path, root)
            here = wing_of(source)
            for target in sorted(imports_of(path, root)):
                top = target.split(".")[0]
                if top in NEVER or top in NEVER_IN.get(package, set()):
                    found.append(f"{source} imports {target}")
                elif top in SHIPPED:
                    there = wing_of(target)
                    if there and RANK[there] < RANK[here]:
                        found.append(f"{source} ({here}) imports {target} ({there}), a wing above it")
    return found


def test_every_arrow_goes_down() -> None:
    assert violations() == []


def test_the_s3_vocabulary_imports_nothing_internal_but_itself() -> None:
    offenders = {
        module_name(path): sorted(t for t in imports_of(path) if t.split(".")[0] in SHIPPED and
                                  not t.startswith("cache.s3"))
        for path in sorted((ROOT / "cache" / "s3").rglob("*.py"))
    }
    assert {m: t for m, t in offenders.items() if t} == {}


@pytest.mark.parametrize(("module", "line"), [
    ("cache/storage/x.py", "from cache.blocks.store import BlockStore\n"),  # storage -> blocks: up
    ("cache/s3/x.py", "from cache.storage.base import UnderStore\n"),  # the vocabulary -> storage: up
    ("cache/blocks/x.py", "import proxy.app\n"),  # cache -> proxy
    ("proxy/handlers/x.py", "from proxy.app import S3App\n"),  # a handler -> the composition root
    ("proxy/http.py", "from proxy.cli.main import main\n"),  # the front -> its command line
    ("cache/x.py", "from starlette import responses\n"),
    ("proxy/x.py", "from tests.harness import Worker\n"),
    ("conf/x.py", "import rig\n"),
])
def test_the_checker_refuses_an_arrow_that_runs_up(tmp_path: Path, module: str, line: str) -> None:
    for package in SHIPPED:
        (tmp_path / package).mkdir()
    target = tmp_path / module
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(line)
    assert len(violations(tmp_path)) == 1


def test_the_checker_allows_arrows_down_and_within_a_wing(tmp_path: Path) -> None:
    for package in SHIPPED:
        (tmp_path / package).mkdir()
    (tmp_path / "proxy" / "handlers").mkdir()
    (tmp_path / "proxy" / "handlers" / "x.py").write_text(
        "from proxy.http import Request\nfrom cache.s3.errors import S3Error\n")
    (tmp_path / "cache" / "blocks").mkdir()
    (tmp_path / "cache" / "blocks" / "y.py").write_text("from cache.blocks.store import BlockStore\nimport conf.settings\n")
    assert violations(tmp_path) == []
