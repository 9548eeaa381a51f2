"""cache.s3.xml: the XML and HTTP-date rules the front end and the origin client share."""

from __future__ import annotations

import pytest
from defusedxml import ElementTree

from cache.s3.errors import S3Error
from cache.s3.xml import NOT_XML_CHAR, http_date, parse_xml, tag_pairs, tagging_document, xml_safe

TAGS = {"k&<>\"'": "v\r\n\t", "empty": "", "caf\u00e9": "\U0001f600"}


def test_a_tagging_document_reads_back_exactly() -> None:
    assert dict(tag_pairs(parse_xml(tagging_document(TAGS)))) == TAGS
    assert list(tag_pairs(parse_xml(tagging_document({})))) == []


def test_namespaces_are_dropped() -> None:
    with_ns = parse_xml(b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>a</Key>'
                        b"<Value>1</Value></Tag></TagSet></Tagging>")
    assert [node.tag for node in with_ns.iter()] == ["Tagging", "TagSet", "Tag", "Key", "Value"]
    assert tag_pairs(with_ns) == [("a", "1")]


def test_entities_are_refused() -> None:
    bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><Tagging>&b;</Tagging>'
    with pytest.raises(ValueError):  # defusedxml's EntitiesForbidden
        parse_xml(bomb)
    with pytest.raises(ElementTree.ParseError):
        parse_xml(b"<Tagging>")


@pytest.mark.parametrize("body, message", [
    (b"<Tagging/>", "Tagging must contain a TagSet"),
    (b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>", "Each Tag must have a Key and a Value"),
    (b"<Tagging><TagSet><Tag><Value>a</Value></Tag></TagSet></Tagging>", "Each Tag must have a Key and a Value"),
])
def test_a_clients_tagging_must_be_whole_an_origins_is_taken_as_it_comes(body: bytes, message: str) -> None:
    with pytest.raises(S3Error) as caught:
        tag_pairs(parse_xml(body))
    assert (caught.value.code, caught.value.message) == ("MalformedXML", message)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tag_pairs(parse_xml(body), strict=False))


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1f", "\ud800", "\udfff",
                                  "\ufffe", "\uffff"])
def test_characters_xml_cannot_carry(char: str) -> None:
    assert not xml_safe(f"a{char}b")
    assert NOT_XML_CHAR.findall(f"a{char}b") == [char]


@pytest.mark.parametrize("char", ["\t", "\n", "\r", " ", "\x7f", "\x85", "\ud7ff", "\ue000", "\ufffd",
                                  "\U00010000", "\U0010ffff"])
def test_characters_xml_carries(char: str) -> None:
    assert xml_safe(f"a{char}b") and NOT_XML_CHAR.search(char) is None


@pytest.mark.parametrize("text, epoch", [
    ("Wed, 01 Jan 2025 00:00:00 GMT", 1735689600.0),
    ("Wednesday, 01-Jan-25 00:00:00 GMT", 1735689600.0),  # RFC 850, still to be accepted
    ("Wed Jan  1 00:00:00 2025", 1735689600.0),  # asctime
    (None, None),
    ("", None),
    ("yesterday", None),
    ("Wed, 01 Jan 2025 25:00:00 GMT", None),
])
def test_http_dates(text: str | None, epoch: float | None) -> None:
    assert http_date(text) == epoch
