"""S3 error responses (AWS "Error responses" reference): codes, statuses, XML shape, HEAD and 304 without body."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from cache.s3.errors import CODES, S3Error, invalid_argument, no_such_bucket, no_such_key
from proxy.errors import error_response, internal_error

# code -> HTTP status, from AWS's S3 error code list
AWS_STATUS = {
    "MalformedTrailerError": 400,
    "RequestHeaderSectionTooLarge": 400,
    "MalformedACLError": 400,
    "MissingSecurityHeader": 400,
    "UnexpectedContent": 400,
    "AccessControlListNotSupported": 400,
    "NoSuchBucketPolicy": 404,
    "NoSuchCORSConfiguration": 404,
    "NoSuchLifecycleConfiguration": 404,
    "NoSuchPublicAccessBlockConfiguration": 404,
    "NoSuchWebsiteConfiguration": 404,
    "ReplicationConfigurationNotFoundError": 404,
    "ServerSideEncryptionConfigurationNotFoundError": 404,
    "AccessDenied": 403,
    "InvalidAccessKeyId": 403,
    "RequestTimeTooSkewed": 403,
    "SignatureDoesNotMatch": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidObjectState": 403,
    "InvalidPart": 400,
    "InvalidPartNumber": 416,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "InvalidTag": 400,
    "InvalidURI": 400,
    "KeyTooLongError": 400,
    "MalformedXML": 400,
    "MetadataTooLarge": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchTagSet": 404,
    "NoSuchUpload": 404,
    "NoSuchVersion": 404,
    "NotImplemented": 501,
    "NotModified": 304,
    "OperationAborted": 409,
    "ConditionalRequestConflict": 409,
    "PreconditionFailed": 412,
    "ServiceUnavailable": 503,
    "SlowDown": 503,
    "XAmzContentSHA256Mismatch": 400,
}


@pytest.mark.parametrize("code", sorted(CODES))
def test_status_of_every_code_is_aws(code: str) -> None:
    assert code in AWS_STATUS, f"{code} is not in the test's AWS table"
    error = S3Error(code)
    assert error.status == AWS_STATUS[code]
    assert error.message  # AWS's default message when the raise site gives none


def test_unknown_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="NoSuchThing"):
        S3Error("NoSuchThing")
    with pytest.raises(ValueError):
        S3Error("nosuchkey")  # codes are case-sensitive


def test_message_and_str() -> None:
    assert S3Error("NoSuchKey").message == "The specified key does not exist."
    error = S3Error("InvalidRequest", "custom words")
    assert error.message == "custom words"
    assert str(error) == "InvalidRequest: custom words"


def test_helpers() -> None:
    assert (no_such_bucket("b").code, no_such_bucket("b").extra) == ("NoSuchBucket", {"BucketName": "b"})
    assert (no_such_key("k").code, no_such_key("k").extra) == ("NoSuchKey", {"Key": "k"})
    error = invalid_argument("bad", "max-keys", "-1")
    assert (error.code, error.message, error.extra) == ("InvalidArgument", "bad", {"ArgumentName": "max-keys",
                                                                                    "ArgumentValue": "-1"})
    assert (internal_error().code, internal_error().status) == ("InternalError", 500)


def parse(body: bytes) -> ElementTree.Element:
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ElementTree.fromstring(body)


def test_error_xml() -> None:
    response = error_response(no_such_key("photos/2006/February/sample.jpg"), "/b/photos/2006/February/sample.jpg",
                              "4442587FB7D0A2F9", head=False)
    assert response.status == 404
    assert response.headers["content-type"] == "application/xml"
    assert isinstance(response.body, bytes)
    assert response.headers["content-length"] == str(len(response.body))
    root = parse(response.body)
    assert root.tag == "Error"  # S3's error document has no namespace
    children = [(child.tag, child.text) for child in root]
    assert children[:2] == [("Code", "NoSuchKey"), ("Message", "The specified key does not exist.")]
    assert set(children[2:]) == {("Key", "photos/2006/February/sample.jpg"),
                                 ("Resource", "/b/photos/2006/February/sample.jpg"),
                                 ("RequestId", "4442587FB7D0A2F9")}
    assert len(children) == 5


def test_error_xml_escapes_every_value() -> None:
    nasty = 'a<b>&c"d\'e]]>f\r\ng\th'
    error = S3Error("InvalidArgument", f"bad {nasty}", extra={"ArgumentName": nasty, "ArgumentValue": "<x/>"})
    response = error_response(error, f"/b/{nasty}", "ID<&>", head=False)
    assert isinstance(response.body, bytes)
    root = parse(response.body)  # well-formed
    assert root.findtext("Message") == f"bad {nasty}"
    assert root.findtext("ArgumentName") == nasty
    assert root.findtext("ArgumentValue") == "<x/>"
    assert root.findtext("Resource") == f"/b/{nasty}"
    assert root.findtext("RequestId") == "ID<&>"
    assert b"<x/>" not in response.body


def test_error_headers_travel_with_the_response() -> None:
    error = S3Error("InvalidRange", headers={"content-range": "bytes */10"}, extra={"ActualObjectSize": "10"})
    response = error_response(error, "/b/k", "ID", head=False)
    assert response.status == 416
    assert response.headers["content-range"] == "bytes */10"
    assert isinstance(response.body, bytes)
    assert parse(response.body).findtext("ActualObjectSize") == "10"


@pytest.mark.parametrize("code", ["NoSuchKey", "NoSuchBucket", "AccessDenied", "PreconditionFailed", "InvalidRange",
                                  "InternalError", "MethodNotAllowed"])
def test_head_errors_have_no_body(code: str) -> None:
    error = S3Error(code, headers={"x-test": "1"})
    response = error_response(error, "/b/k", "ID", head=True)
    assert response.status == AWS_STATUS[code]
    assert response.body == b""
    assert response.headers["content-length"] == "0"
    assert response.headers["x-test"] == "1"


def test_not_modified_has_no_body_even_for_get() -> None:
    error = S3Error("NotModified", headers={"etag": '"abc"', "last-modified": "Tue, 14 Nov 2023 22:13:20 GMT"})
    response = error_response(error, "/b/k", "ID", head=False)
    assert response.status == 304
    assert response.body == b""
    assert response.headers["etag"] == '"abc"'
    assert response.headers["last-modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
