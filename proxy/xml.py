"""S3 XML: building response documents and parsing request bodies safely.

Responses are built as text with every value escaped here, in one place; request bodies are parsed
with defusedxml (no entity expansion, no external references) and namespaces are dropped, so a body
with or without xmlns reads the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import lru_cache
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from cache.s3.errors import S3Error

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"})
MAX_XML_BODY_BYTES = 2 << 20  # DeleteObjects with 1000 long keys fits comfortably


def escape(value: object) -> str:
    return str(value).translate(_ESCAPES)


def tag(name: str, value: object) -> str:
    return f"<{name}>{escape(value)}</{name}>"


def tags(name: str, values: Iterable[object]) -> str:
    return "".join(tag(name, value) for value in values)


def document(root: str, *children: str, namespace: bool = True) -> bytes:
    xmlns = f' xmlns="{S3_NS}"' if namespace else ""
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}{xmlns}>{"".join(children)}</{root}>'.encode()


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
        element = ElementTree.fromstring(body)
    except (ElementTree.ParseError, DefusedXmlException, ValueError):
        raise S3Error("MalformedXML") from None
    for node in element.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]
    if element.tag != root:
        raise S3Error("MalformedXML", f"Expected a <{root}> document")
    return element


def child_text(element: Element, name: str) -> str | None:
    child = element.find(name)
    return None if child is None else (child.text or "")
