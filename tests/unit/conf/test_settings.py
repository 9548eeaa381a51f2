"""conf.settings: defaults < TOML file < S3CACHE_<SECTION>_<FIELD> environment < explicit overrides."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from conf.settings import SECTIONS, ConfigError, Settings, describe, env_name, load_settings, parse_size

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "conf" / "example.toml"


def toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s3cache.toml"
    path.write_text(text)
    return path


def config_error(*args: object, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as exc:
        load_settings(*args, **kwargs)  # type: ignore[arg-type]
    message = str(exc.value)
    assert "\n" not in message, message  # one line
    return message


# ---- defaults ---------------------------------------------------------------------------------------


def test_defaults() -> None:
    s = load_settings()
    assert (s.server.host, s.server.port, s.server.processes, s.server.region) == ("127.0.0.1", 29998, 1, "us-east-1")
    assert s.server.keepalive_timeout_s == 75.0
    assert (s.storage.data_dir, s.storage.fsync) == (Path("data"), False)
    assert s.cache.cache_dir == Path(".s3cache-blocks")
    assert s.cache.capacity_bytes == 10 * 1024**3
    assert s.cache.block_size_bytes == 4 * 1024**2
    assert (s.log.level, s.log.access_log) == ("info", True)
    assert s == Settings()


def test_the_process_environment_is_not_read_implicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3CACHE_SERVER_PORT", "1234")
    assert load_settings().server.port == 29998
    assert load_settings(env={"S3CACHE_SERVER_PORT": "1234"}).server.port == 1234


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValidationError):
        s.server.port = 1  # type: ignore[misc]


# ---- layers -----------------------------------------------------------------------------------------


def test_file_layer(tmp_path: Path) -> None:
    path = toml(tmp_path, """
[server]
port = 9000
host = "0.0.0.0"

[storage]
data_dir = "/srv/data"
fsync = true

[cache]
capacity_bytes = "2G"
block_size_bytes = 1048576

[log]
level = "debug"
""")
    s = load_settings(path)
    assert (s.server.port, s.server.host, s.server.region) == (9000, "0.0.0.0", "us-east-1")  # unset keys: defaults
    assert (s.storage.data_dir, s.storage.fsync) == (Path("/srv/data"), True)
    assert (s.cache.capacity_bytes, s.cache.block_size_bytes) == (2 << 30, 1 << 20)
    assert s.log.level == "debug"


def test_env_names() -> None:
    assert env_name("server", "port") == "S3CACHE_SERVER_PORT"
    assert env_name("storage", "data_dir") == "S3CACHE_STORAGE_DATA_DIR"
    assert env_name("cache", "capacity_bytes") == "S3CACHE_CACHE_CAPACITY_BYTES"


def test_env_layer_converts_strings() -> None:
    s = load_settings(env={
        "S3CACHE_SERVER_PORT": "9001",
        "S3CACHE_SERVER_KEEPALIVE_TIMEOUT_S": "5.5",
        "S3CACHE_STORAGE_DATA_DIR": "/tmp/d",
        "S3CACHE_STORAGE_FSYNC": "true",
        "S3CACHE_CACHE_CAPACITY_BYTES": "512k",
        "S3CACHE_LOG_ACCESS_LOG": "false",
        "S3CACHE_LOG_LEVEL": "warning",
        "UNRELATED": "x",
    })
    assert (s.server.port, s.server.keepalive_timeout_s) == (9001, 5.5)
    assert (s.storage.data_dir, s.storage.fsync) == (Path("/tmp/d"), True)
    assert s.cache.capacity_bytes == 512 * 1024
    assert (s.log.access_log, s.log.level) == (False, "warning")


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    path = toml(tmp_path, '[server]\nport = 1001\nhost = "10.0.0.1"\nregion = "eu-west-1"\n')
    env = {"S3CACHE_SERVER_PORT": "1002", "S3CACHE_SERVER_HOST": "10.0.0.2"}
    overrides = {"server": {"port": 1003}}
    s = load_settings(path, env, overrides)
    assert (s.server.port, s.server.host, s.server.region, s.server.processes) == (1003, "10.0.0.2", "eu-west-1", 1)
    s = load_settings(path, env)
    assert (s.server.port, s.server.host) == (1002, "10.0.0.2")
    s = load_settings(path)
    assert (s.server.port, s.server.host) == (1001, "10.0.0.1")
    assert load_settings(None, env, overrides).server.region == "us-east-1"


def test_override_none_means_not_given(tmp_path: Path) -> None:
    path = toml(tmp_path, "[server]\nport = 1001\n")
    assert load_settings(path, {}, {"server": {"port": None, "host": None}}).server.port == 1001


# ---- sizes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4M", 4 * 1024**2),
        ("4m", 4 * 1024**2),
        ("4MiB", 4 * 1024**2),
        ("4 MiB", 4 * 1024**2),
        ("1GiB", 1024**3),
        ("1G", 1024**3),
        ("1g", 1024**3),
        ("512k", 512 * 1024),
        ("512K", 512 * 1024),
        ("512KiB", 512 * 1024),
        ("2T", 2 * 1024**4),
        ("1.5G", 3 * 1024**3 // 2),
        ("100", 100),
        ("100B", 100),
        ("0", 0),
        (" 8M ", 8 * 1024**2),
    ],
)
def test_size_suffixes(text: str, expected: int) -> None:
    assert parse_size(text) == expected
    assert load_settings(env={"S3CACHE_CACHE_CAPACITY_BYTES": text}).cache.capacity_bytes == expected
    assert load_settings(overrides={"cache": {"capacity_bytes": text}}).cache.capacity_bytes == expected


def test_sizes_as_numbers_pass_through() -> None:
    assert parse_size(4096) == 4096
    assert load_settings(overrides={"cache": {"capacity_bytes": 123}}).cache.capacity_bytes == 123


@pytest.mark.parametrize("text", ["4X", "M", "-1", "-1M", "four", "4 M B X", "", "1e9"])
def test_bad_sizes(text: str) -> None:
    message = config_error(env={"S3CACHE_CACHE_CAPACITY_BYTES": text})
    assert message.startswith("cache.capacity_bytes: ")
    assert "S3CACHE_CACHE_CAPACITY_BYTES" in message


def test_negative_size_number_is_refused(tmp_path: Path) -> None:
    assert config_error(toml(tmp_path, "[cache]\ncapacity_bytes = -1\n")).startswith("cache.capacity_bytes: ")


# ---- errors -----------------------------------------------------------------------------------------


def test_unknown_key_in_file(tmp_path: Path) -> None:
    message = config_error(toml(tmp_path, "[server]\nprot = 1\n"))
    assert message == "server.prot: unknown key"


def test_unknown_section_in_file(tmp_path: Path) -> None:
    message = config_error(toml(tmp_path, "[sever]\nport = 1\n"))
    assert message.startswith("sever: ")
    assert "unknown key" in message


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    assert config_error(toml(tmp_path, "server = 5\n")).startswith("server: ")


def test_unknown_override_key() -> None:
    assert config_error(overrides={"server": {"bogus": 1}}).startswith("server.bogus: unknown key")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\nport = \"abc\"\n", "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ("[server]\nport = -1\n", "server.port"),
        ("[server]\nprocesses = 0\n", "server.processes"),
        ("[server]\nkeepalive_timeout_s = 0\n", "server.keepalive_timeout_s"),
        ("[log]\nlevel = \"verbose\"\n", "log.level"),
        ("[storage]\nfsync = \"sometimes\"\n", "storage.fsync"),
        ("[cache]\nblock_size_bytes = \"big\"\n", "cache.block_size_bytes"),
    ],
)
def test_bad_values_in_file_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    message = config_error(toml(tmp_path, text))
    assert message.startswith(f"{key}: ")
    assert "S3CACHE_" not in message


def test_bad_env_value_names_the_variable() -> None:
    message = config_error(env={"S3CACHE_SERVER_PORT": "eighty"})
    assert message.startswith("server.port: ")
    assert "S3CACHE_SERVER_PORT" in message


def test_bad_override_says_command_line() -> None:
    message = config_error(overrides={"server": {"port": 99999}})
    assert message.startswith("server.port: ")
    assert "command line" in message
    assert "S3CACHE_SERVER_PORT" not in message


def test_env_blames_the_right_layer(tmp_path: Path) -> None:
    # the file is bad, the environment only sets another key: the message must not blame the environment
    message = config_error(toml(tmp_path, "[server]\nport = \"x\"\n"), {"S3CACHE_SERVER_HOST": "h"})
    assert message.startswith("server.port: ")
    assert "S3CACHE_" not in message


def test_missing_file(tmp_path: Path) -> None:
    message = config_error(tmp_path / "nope.toml")
    assert "nope.toml" in message


def test_invalid_toml(tmp_path: Path) -> None:
    message = config_error(toml(tmp_path, "[server\nport = 1\n"))
    assert "s3cache.toml" in message


# ---- describe() and the example file ----------------------------------------------------------------


def test_describe_covers_every_field() -> None:
    rows = describe()
    assert {(section, field) for section, field, _, _ in rows} == \
        {(section, field) for section, model in SECTIONS.items() for field in model.model_fields}
    defaults = load_settings()
    for section, field, default, description in rows:
        assert description, f"{section}.{field} has no description"
        assert getattr(getattr(defaults, section), field) == default


def section_text(text: str, section: str) -> str:
    """The lines of [section] in a TOML text (the header may be commented out), up to the next table header."""
    match = re.search(rf"^#?[ \t]*\[{re.escape(section)}\][ \t]*$(.*?)(?=^#?[ \t]*\[|\Z)", text,
                      re.MULTILINE | re.DOTALL)
    assert match, f"conf/example.toml has no [{section}] table"
    return match.group(1)


def test_example_toml_loads_and_mentions_every_setting() -> None:
    text = EXAMPLE.read_text()
    load_settings(EXAMPLE)  # loads cleanly: no unknown keys, no bad values
    for section, field, _, _ in describe():
        # set, or shown commented out (a setting whose default is "unset" cannot be written in TOML)
        assert re.search(rf"^[ \t]*#?[ \t]*{re.escape(field)}[ \t]*=", section_text(text, section), re.MULTILINE), \
            f"conf/example.toml does not mention [{section}] {field}"


def test_example_toml_values_are_the_defaults() -> None:
    parsed = tomllib.loads(EXAMPLE.read_text())
    settings = load_settings(EXAMPLE)
    for section, field, default, _ in describe():
        if field in parsed.get(section, {}):
            assert getattr(getattr(settings, section), field) == default, f"{section}.{field}"
