"""ObjectMeta's one serialisation: every field there and back, whatever fields it grows."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from cache.s3.model import ObjectMeta

# A value for every field, none of them the field's default: a field added to ObjectMeta without one here
# fails test_the_sample_sets_every_field, and one the serialisation drops fails the round trips.
SAMPLE: dict[str, Any] = {
    "key": "dir/a key \u00e9",
    "size": 5 * (1 << 20) + 13,
    "etag": "180eefd43b6303e35a1691d8b82a86cf-2",
    "last_modified": 1_700_000_000.125,
    "headers": {"content-type": "text/x-test", "cache-control": "no-cache"},
    "user_metadata": {"colour": "blue"},
    "tags": {"project": "s3cache", "empty": ""},
    "checksums": {"sha256": "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=", "crc32": "AAAAAA=="},
    "checksum_type": "COMPOSITE",
    "parts_count": 2,
    "tag_count": 2,
    "checksums_known": False,
}


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def test_the_sample_sets_every_field() -> None:
    names = [f.name for f in dataclasses.fields(ObjectMeta)]
    assert sorted(SAMPLE) == sorted(names), "give SAMPLE a value for every field of ObjectMeta"
    for f in dataclasses.fields(ObjectMeta):
        assert SAMPLE[f.name] != _default(f), f"SAMPLE[{f.name!r}] is the default: a dropped field would pass"


@pytest.mark.parametrize("through", ["record", "json"])
def test_every_field_survives_the_round_trip(through: str) -> None:
    meta = ObjectMeta(**SAMPLE)
    back = ObjectMeta.from_record(meta.to_record()) if through == "record" else ObjectMeta.from_json(meta.to_json())
    for f in dataclasses.fields(ObjectMeta):
        assert getattr(back, f.name) == getattr(meta, f.name), f.name
    assert back == meta


def test_the_record_names_every_field() -> None:
    record = json.loads(ObjectMeta(**SAMPLE).to_json())
    assert record == SAMPLE


def test_a_record_shares_no_dict_with_the_meta() -> None:
    meta = ObjectMeta(**SAMPLE)
    record = meta.to_record()
    record["checksums"]["crc32c"] = "x"
    back = ObjectMeta.from_record(record)
    record["checksums"]["sha1"] = "y"
    assert "crc32c" not in meta.checksums and "sha1" not in back.checksums


def test_a_record_from_before_a_field_existed_takes_its_default() -> None:
    record = {name: value for name, value in SAMPLE.items() if name != "parts_count"}
    record["not a field"] = 1
    assert ObjectMeta.from_json(json.dumps(record)) == ObjectMeta(**{**SAMPLE, "parts_count": None})


@pytest.mark.parametrize("text", [
    '{"size": 11, "etag": "e", "mtime": 1.0, "headers": {}, "user": {}, "tags": 0}',  # the old hand-made record
    "[1, 2]",
    "not json",
])
def test_an_unreadable_record_raises(text: str) -> None:
    with pytest.raises((TypeError, ValueError)):
        ObjectMeta.from_json(text)
