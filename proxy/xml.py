"""S3 XML on the front: building response documents and parsing request bodies safely.

Escaping, documents and parsing are cache.s3.xml's, shared with the origin client (re-exported here for the
handlers); what is only the front's is here: timestamps as S3 answers them, and a request body that is not
the document expected being MalformedXML.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import lru_cache
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from cache.s3.errors import S3Error
from cache.s3.xml import document, parse_xml, tag

__all__ = ["MAX_XML_BODY_BYTES", "child_text", "document", "http_time", "iso_time", "parse", "tag", "tags"]

MAX_XML_BODY_BYTES = 2 << 20  # DeleteObjects with 1000 long keys fits comfortably


def tags(name: str, values: Iterable[object]) -> str:
    return "".join(tag(name, value) for value in values)


def iso_time(epoch: float) -> str:
    """S3's timestamp form in XML: 2009-10-12T17:50:30.000Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


@lru_cache(maxsize=8192)
def http_time(epoch: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(epoch))


def parse(body: bytes, root: str) -> Element:
    """Parse a request body whose document element must be root."""
    if not body.strip():
        raise S3Error("MalformedXML")
    try:
        element = parse_xml(body)
    except (ElementTree.ParseError, DefusedXmlException, ValueError):
        raise S3Error("MalformedXML") from None
    if element.tag != root:
        raise S3Error("MalformedXML", f"Expected a <{root}> document")
    return element


def child_text(element: Element, name: str) -> str | None:
    child = element.find(name)
    return None if child is None else (child.text or "")
