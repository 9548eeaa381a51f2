"""S3's XML and HTTP-date vocabulary, shared by the front end (documents it answers, bodies it is sent) and the
origin client (bodies it sends, documents it is answered).

Documents are built as text with every value escaped here; documents are parsed with defusedxml (no entity
expansion, no external references) and their namespaces dropped, so one with or without xmlns reads the same.
No I/O; nothing internal but cache.s3.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from xml.etree.ElementTree import Element

from defusedxml import ElementTree

from cache.s3.errors import S3Error

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"})
# XML 1.0's Char production: what a document can carry at all, escaped or not (no NUL, most C0 controls,
# lone surrogates, U+FFFE or U+FFFF).
NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# ---- building ------------------------------------------------------------------------------------


def escape(value: object) -> str:
    """Text for element content or a double-quoted attribute (a CR kept as a reference, or a parser drops it)."""
    return str(value).translate(_ESCAPES)


def tag(name: str, value: object) -> str:
    return f"<{name}>{escape(value)}</{name}>"


def document(root: str, *children: str, namespace: bool = True) -> bytes:
    xmlns = f' xmlns="{S3_NS}"' if namespace else ""
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}{xmlns}>{"".join(children)}</{root}>'.encode()


def xml_safe(text: str) -> bool:
    """True when XML 1.0 can carry text (it cannot carry most control characters, whatever the escaping)."""
    return NOT_XML_CHAR.search(text) is None


def tagging_document(tags: dict[str, str]) -> bytes:
    """A Tagging document: GetObjectTagging's answer, PutObjectTagging's body."""
    entries = "".join(f"<Tag>{tag('Key', k)}{tag('Value', v)}</Tag>" for k, v in tags.items())
    return document("Tagging", f"<TagSet>{entries}</TagSet>")


# ---- parsing -------------------------------------------------------------------------------------


def parse_xml(data: bytes) -> Element:
    """The document element, namespaces dropped. ElementTree.ParseError (or a DefusedXmlException, a
    ValueError) when data is not a well-formed document or uses what defusedxml forbids."""
    element: Element = ElementTree.fromstring(data)  # defusedxml's parser is untyped
    for node in element.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]
    return element


def tag_pairs(tagging: Element, strict: bool = True) -> list[tuple[str, str]]:
    """The (key, value) pairs of a parsed Tagging document, in order (duplicates kept for the caller to judge).

    strict (a client's body): MalformedXML without a TagSet, or for a Tag without Key or Value. Not strict (an
    origin's answer, taken as it comes): what is missing reads as empty.
    """
    tag_set = tagging.find("TagSet")
    if tag_set is None:
        if strict:
            raise S3Error("MalformedXML", "Tagging must contain a TagSet")
        return []
    pairs = []
    for element in tag_set.findall("Tag"):
        key, value = element.findtext("Key"), element.findtext("Value")
        if key is None or value is None:
            if strict:
                raise S3Error("MalformedXML", "Each Tag must have a Key and a Value")
            key, value = key or "", value or ""
        pairs.append((key, value))
    return pairs


def http_date(text: str | None) -> float | None:
    """An HTTP date (Last-Modified, If-Modified-Since, Date) as epoch seconds; None when absent or unreadable."""
    if not text:
        return None
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
