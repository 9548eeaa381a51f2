"""The one place an S3Error becomes a response: S3 error XML with Code, Message, Resource, RequestId."""

from __future__ import annotations

from cache.s3.errors import S3Error
from cache.s3.xml import NOT_XML_CHAR
from proxy.http import Response
from proxy.xml import document, tag

_NO_BODY = {304}


def _xml_safe(value: object) -> str:
    """value with each character XML 1.0 cannot carry, even as a reference, as %XX: a key with NUL is refused,
    and its error must still parse."""
    return NOT_XML_CHAR.sub(lambda match: f"%{ord(match.group()):02X}", str(value))


def error_response(error: S3Error, resource: str, request_id: str, head: bool) -> Response:
    if head or error.status in _NO_BODY:
        # HEAD answers and 304s carry no body; the status (and headers) say it all.
        return Response(error.status, {"content-length": "0", **error.headers})
    body = document(
        "Error",
        tag("Code", error.code),
        tag("Message", _xml_safe(error.message)),
        *(tag(name, _xml_safe(value)) for name, value in error.extra.items()),
        tag("Resource", _xml_safe(resource)),
        tag("RequestId", request_id),
        namespace=False,
    )
    response = Response.xml(body, error.status)
    response.headers.update(error.headers)
    return response


def internal_error() -> S3Error:
    return S3Error("InternalError")
