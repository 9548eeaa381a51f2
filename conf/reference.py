"""docs/configuration.md, rendered from the settings model: every section and key with its TOML key, type, default
(with its unit), allowed values, environment variable, command-line flag and description.

conf sits below the command line, so the flag table is handed in: ``render(flags)`` with flags mapping an argparse
destination to (section, field), as proxy/cli/main.py's SERVE_FLAGS does. Regenerate the page with
``python -m tests.unit.conf.test_reference`` (which hands it SERVE_FLAGS); tests/unit/conf/test_reference.py fails
while the page is stale.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BeforeValidator, SecretStr
from pydantic.fields import FieldInfo

from conf.settings import SECTIONS, MountSettings, Settings, env_name, parse_size

Flags = Mapping[str, tuple[str, str]]  # argparse destination (cache_dir) -> (section, field)

REGENERATE = "python -m tests.unit.conf.test_reference"
MOUNT_FLAG = "--mount NAME=URI[,ro]"
_MOUNT_FLAG_FIELDS = ("bucket", "uri", "mode")  # what --mount sets: NAME, URI and the mode after the comma
_UNITS = {"_s": "s", "_ms": "ms", "_bytes": "bytes"}
_SIZES = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The type without Annotated[...] and without None, and whether None (unset) is allowed."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            if len(args) != 1:
                return annotation, optional
            annotation = args[0]
        else:
            return annotation, optional


def _is_size(info: FieldInfo) -> bool:
    return any(isinstance(m, BeforeValidator) and m.func is parse_size for m in info.metadata)


def _type_name(annotation: Any, size: bool = False) -> str:
    if size:
        return "size"
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "string"
    if origin is dict:
        key, value = (_type_name(arg) for arg in typing.get_args(annotation))
        return f"table of {key} = {value}"
    if origin is list:
        return f"list of {_type_name(typing.get_args(annotation)[0])}s"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path", SecretStr: "secret string"}
    if annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation))


def _unit(field: str) -> str:
    return next((unit for suffix, unit in _UNITS.items() if field.endswith(suffix)), "")


def _amount(value: float, field: str, size: bool) -> str:
    """A number as the page shows it: with its unit, sizes also in K/M/G/T when they divide evenly."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if size and isinstance(value, int):
        for factor, name in _SIZES:
            if value >= factor and value % factor == 0:
                return f"{value // factor} {name} ({value} bytes)"
        return f"{value} bytes"
    unit = _unit(field)
    return f"{value} {unit}" if unit else str(value)


def _default(info: FieldInfo, field: str, size: bool) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return _amount(value, field, size)
    if isinstance(value, str | Path):
        return f'`"{value}"`'
    if isinstance(value, dict | list) and not value:
        return "empty"
    return f"`{value!r}`"


def _allowed(annotation: Any, info: FieldInfo, field: str, size: bool) -> str:
    if typing.get_origin(annotation) is Literal:
        return ", ".join(f'`"{choice}"`' for choice in typing.get_args(annotation))
    low: tuple[float, bool] | None = None  # (bound, inclusive)
    high: tuple[float, bool] | None = None
    for meta in info.metadata:  # pydantic's constraints (annotated_types' Ge, Gt, Le, Lt, MinLen), read by name
        for name, inclusive, is_low in (("ge", True, True), ("gt", False, True), ("le", True, False),
                                        ("lt", False, False)):
            value = getattr(meta, name, None)
            if not isinstance(value, int | float):
                continue
            current = low if is_low else high
            tighter = current is None or (value > current[0] if is_low else value < current[0]) or \
                (value == current[0] and not inclusive)
            if tighter and is_low:
                low = (value, inclusive)
            elif tighter:
                high = (value, inclusive)
        min_length = getattr(meta, "min_length", None)
        if isinstance(min_length, int) and min_length:
            return f"at least {min_length} character{'s' * (min_length > 1)}"
    shown = [_amount(bound[0], field, size) if bound else "" for bound in (low, high)]
    if low and high and low[1] and high[1]:
        return f"{shown[0]} to {shown[1]}"
    parts = []
    if low:
        parts.append(f"{'at least' if low[1] else 'more than'} {shown[0]}")
    if high:
        parts.append(f"{'at most' if high[1] else 'less than'} {shown[1]}")
    return ", ".join(parts) or "any"


def _flag_names(flags: Flags) -> dict[tuple[str, str], str]:
    return {target: "--" + dest.replace("_", "-") for dest, target in flags.items()}


def _key(section: str, field: str, info: FieldInfo, flag: str | None, env: str | None) -> list[str]:
    annotation, optional = _unwrap(info.annotation)
    size = _is_size(info)
    kind = _type_name(annotation, size)
    if size:
        kind += " (bytes, or with a K/M/G/T suffix: `\"4M\"`)"
    elif _unit(field):
        kind += f" ({'seconds' if _unit(field) == 's' else _unit(field)})"
    if optional:
        kind += ", optional"
    rows = [
        f"### `{section}.{field}`",
        "",
        f"- Type: {kind}",
        f"- Default: {_default(info, field, size)}",
        f"- Allowed: {_allowed(annotation, info, field, size)}",
        f"- Environment: {f'`{env}`' if env else 'none (TOML only)'}",
        f"- Flag: {f'`{flag}`' if flag else 'none'}",
        "",
        (info.description or "").strip(),
        "",
    ]
    return rows


def _env_settable(info: FieldInfo) -> bool:
    """Whether an environment variable (a string) can set the field: not the tables and lists."""
    annotation, _ = _unwrap(info.annotation)
    return typing.get_origin(annotation) not in (dict, list)


def render(flags: Flags) -> str:
    """The whole of docs/configuration.md."""
    names = _flag_names(flags)
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from conf/settings.py by conf/reference.py: do not edit. Regenerate: {REGENERATE} -->",
        "",
        "Settings are layered, lowest first: built-in defaults, the TOML file given with `--config`, "
        "`S3CACHE_<SECTION>_<KEY>` environment variables, then command-line flags. Sizes take `K`/`M`/`G`/`T` "
        "suffixes (powers of 1024). [`conf/example.toml`](../conf/example.toml) is a commented file with every key. "
        "A bad value stops the worker at start with one line naming the key.",
        "",
        "Sections: " + ", ".join(f"[`[{section}]`](#{section})" for section in SECTIONS) + ", [`[[mounts]]`](#mounts).",
        "",
    ]
    for section, model in SECTIONS.items():
        lines += [f"## {section}", ""]
        for field, info in model.model_fields.items():
            env = env_name(section, field) if _env_settable(info) else None
            lines += _key(section, field, info, names.get((section, field)), env)
    mounts = Settings.model_fields["mounts"]
    lines += ["## mounts", "", (mounts.description or "").strip(), "",
              f"Each `[[mounts]]` table has the keys below. No environment variable sets them; `{MOUNT_FLAG}` "
              "(repeatable, `,rw` and `,wo` too) on the command line replaces the file's list.", ""]
    for field, info in MountSettings.model_fields.items():
        lines += _key("mounts", field, info, MOUNT_FLAG if field in _MOUNT_FLAG_FIELDS else None, None)
    return "\n".join(lines).rstrip("\n") + "\n"


def write(path: Path, flags: Flags) -> bool:
    """Write the page; whether it changed."""
    text = render(flags)
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True
