"""docs/configuration.md is conf/reference.py's rendering of the settings model with the serve command's flags: a stale
page fails here. Run this module to regenerate it: python -m tests.unit.conf.test_reference"""

from __future__ import annotations

import sys
from pathlib import Path

from conf.reference import REGENERATE, render, write
from conf.settings import SECTIONS, MountSettings, env_name
from proxy.cli.main import SERVE_FLAGS

PAGE = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def expected() -> str:
    return render(SERVE_FLAGS)


def test_the_page_is_current() -> None:
    assert PAGE.exists(), f"docs/configuration.md is missing: run {REGENERATE}"
    assert PAGE.read_text() == expected(), f"docs/configuration.md is stale: run {REGENERATE}"


def _entry(text: str, key: str) -> str:
    start = text.index(f"### `{key}`\n")
    end = text.find("\n### ", start + 1)
    return text[start:end if end >= 0 else None]


def test_every_key_with_its_environment_variable_and_flag() -> None:
    text = expected()
    for section, model in SECTIONS.items():
        assert f"## {section}\n" in text
        for field, info in model.model_fields.items():
            entry = _entry(text, f"{section}.{field}")
            assert (info.description or "").strip() in entry
            assert f"`{env_name(section, field)}`" in entry or "none (TOML only)" in entry
    for dest, (section, field) in SERVE_FLAGS.items():
        assert f"- Flag: `--{dest.replace('_', '-')}`" in _entry(text, f"{section}.{field}")
    for field in MountSettings.model_fields:
        assert f"### `mounts.{field}`" in text


def test_types_defaults_units_and_ranges() -> None:
    text = expected()
    port = _entry(text, "server.port")
    assert "- Type: integer\n" in port and "- Default: 29998\n" in port and "- Allowed: 0 to 65535\n" in port
    assert "`S3CACHE_SERVER_PORT`" in port and "`--port`" in port
    capacity = _entry(text, "cache.capacity_bytes")
    assert "- Default: 10 GiB (10737418240 bytes)\n" in capacity and "- Type: size (bytes" in capacity
    assert "- Allowed: 64 KiB (65536 bytes) to 64 MiB (67108864 bytes)\n" in _entry(text, "cache.block_size_bytes")
    timeout = _entry(text, "server.keepalive_timeout_s")
    assert "- Type: number (seconds)\n" in timeout and "- Default: 75 s\n" in timeout
    assert "- Allowed: more than 0 s\n" in timeout
    fmt = _entry(text, "log.format")
    assert '- Allowed: `"text"`, `"json"`\n' in fmt and '- Default: `"text"`' in fmt and "`S3CACHE_LOG_FORMAT`" in fmt
    assert "- Default: unset\n" in _entry(text, "origin.endpoint")
    assert "none (TOML only)" in _entry(text, "auth.users")  # a table: an environment variable cannot set it
    assert "- Default: required\n" in _entry(text, "mounts.bucket")


def test_a_flag_table_is_a_parameter() -> None:
    assert "- Flag: `--listen-port`" in _entry(render({"listen_port": ("server", "port")}), "server.port")
    assert "- Flag: none" in _entry(render({}), "server.port")


if __name__ == "__main__":
    print(f"{PAGE}: {'written' if write(PAGE, SERVE_FLAGS) else 'already current'}")
    sys.exit(0)
