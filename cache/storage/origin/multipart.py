"""Multipart uploads at an S3 origin: the seven multipart calls as the S3 requests they are.

The store delegates them here and lends its wire (signed, retried ``request``) and its HEAD; nothing of an
upload is kept on this side: the origin holds the upload and its parts.

A Complete the origin answers NoSuchUpload (or a 500, when the origin then knows no such upload: moto's answer
to one it never had) is a Complete retried after a lost answer when the key's ETag is the one the parts named
make (md5 of their md5s, ``-N``): 200 with that ETag, as S3 answers a retried Complete; else 404 NoSuchUpload.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import quote
from xml.etree.ElementTree import Element, ParseError

from cache.s3.checksums import element_name, header_name
from cache.s3.errors import CODES, S3Error
from cache.s3.model import (
    BodyChecksums,
    NewObject,
    ObjectMeta,
    PartInfo,
    PartListing,
    SentChecksums,
    UploadInfo,
    WriteConditions,
)
from cache.s3.xml import NOT_XML_CHAR, parse_xml
from cache.storage.base import Body
from cache.storage.locks import KeyLocks, conditional_write
from cache.storage.origin.wire import (
    checksum_elements,
    checksums_of,
    condition_headers,
    http_epoch,
    iso_epoch,
    object_write_headers,
    with_checksum,
)

# where a character XML cannot carry waits while an answer is parsed: a plane of 65,536 code points XML 1.0 carries
# (the private-use ones first, then the unassigned ones) that the answer does not use itself; an answer cannot use
# all fifteen
_PLANES = {plane: re.compile(f"[{chr(plane)}-{chr(plane + 0xFFFF)}]")
           for plane in (0xF0000, 0x100000, *range(0x30000, 0xF0000, 0x10000))}


def _answer(content: bytes) -> Element:
    """An origin's answer about an upload. An origin may echo a key holding a character XML 1.0 cannot carry (NUL,
    most C0 controls) raw, as moto does: no XML parser reads that document, so each such character is parsed as a
    stand-in in a private-use plane and given back in the text read, the key exact."""
    try:
        return parse_xml(content)
    except ParseError:
        text = content.decode("utf-8", "surrogateescape")
        plane = next((plane for plane, used in _PLANES.items() if not used.search(text)), None)
        if NOT_XML_CHAR.search(text) is None or plane is None:
            raise
    root = parse_xml(NOT_XML_CHAR.sub(lambda m: chr(plane + ord(m.group())), text).encode("utf-8"))
    for node in root.iter():
        if node.text:
            node.text = _PLANES[plane].sub(lambda m: chr(ord(m.group()) - plane), node.text)
    return root


def _no_such_upload(upload_id: str) -> S3Error:
    return S3Error("NoSuchUpload", extra={"UploadId": upload_id})


def multipart_etag(etags: list[str]) -> str | None:
    """The ETag S3 gives the object a Complete of parts with these ETags makes; None when one is not an MD5."""
    try:
        digests = [bytes.fromhex(etag.strip().strip('"')) for etag in etags]
    except ValueError:
        return None
    if not digests or any(len(digest) != 16 for digest in digests):
        return None
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


class Answer(Protocol):
    """A 2xx answer of the origin, as the store's request returns it."""

    @property
    def content(self) -> bytes: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


class UploadHost(Protocol):
    """What multipart needs of the store it serves: its wire and its HEAD."""

    async def request(
        self, method: str, bucket: str = "", key: str = "", query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None, body: Body | bytes | None = None, stream: bool = False,
        idempotent: bool = True,
    ) -> Answer: ...
    async def head_object(self, bucket: str, key: str, checksums: bool = False) -> ObjectMeta: ...
    @property
    def locks(self) -> KeyLocks: ...


class Uploads:
    """Multipart calls of an origin store, which delegates them here and lends its request and head_object."""

    def __init__(self, store: UploadHost) -> None:
        self.store = store

    async def _unknown(self, bucket: str, key: str, upload_id: str, error: S3Error) -> bool:
        """Whether an error of a call on an upload means the origin has no such upload: NoSuchUpload, or a 500
        the origin answered after which its ListParts says NoSuchUpload (moto answers 500 to an UploadPart or a
        Complete of an upload it does not have). An origin out of reach is asked nothing more."""
        if error.code == "NoSuchUpload":
            return True
        if error.status != 500:
            return False
        try:
            await self.store.request("GET", bucket, key, query={"uploadId": upload_id, "max-parts": "1"})
        except S3Error as probe:
            return probe.code == "NoSuchUpload"
        return False

    async def _completed(self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]) -> ObjectMeta:
        """The object a Complete of an upload the origin no longer has made, when the key holds it: a repeated
        Complete (its answer lost) is 200 with the same ETag. NoSuchUpload when the key holds something else."""
        expected = multipart_etag([etag for _, etag in parts])
        if expected is not None:
            try:
                meta = await self.store.head_object(bucket, key)
            except S3Error as error:
                if error.code != "NoSuchKey":
                    raise
            else:
                if meta.etag == expected:
                    return meta
        raise _no_such_upload(upload_id)

    async def create_upload(self, bucket: str, key: str, new: NewObject, initiator: str) -> str:
        response = await self.store.request("POST", bucket, key, query={"uploads": ""},
                                            headers=object_write_headers(new), idempotent=False)
        return _answer(response.content).findtext("UploadId") or ""

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Body, size: int | None = None,
        checksums: BodyChecksums | None = None,
    ) -> PartInfo:
        sent = checksums or BodyChecksums()
        headers: dict[str, str] = {}
        body = with_checksum(headers, body, size, sent.values, sent.trailing)
        try:
            response = await self.store.request("PUT", bucket, key, query={"partNumber": str(number),
                                                                           "uploadId": upload_id},
                                                headers=headers, body=body, idempotent=False)
        except S3Error as error:
            if error.code != "NoSuchUpload" and await self._unknown(bucket, key, upload_id, error):
                raise _no_such_upload(upload_id) from None
            raise
        return PartInfo(number, size or 0, response.headers.get("etag", "").strip('"'),
                        http_epoch(response.headers.get("date")), checksums_of(response.headers) or dict(sent.values))

    async def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, number: int, src_bucket: str, src_key: str, start: int, end: int,
    ) -> PartInfo:
        headers = {"x-amz-copy-source": f"/{quote(src_bucket, safe='')}/{quote(src_key, safe='/~')}",
                   "x-amz-copy-source-range": f"bytes={start}-{end - 1}"}
        try:
            response = await self.store.request("PUT", bucket, key, query={"partNumber": str(number),
                                                                           "uploadId": upload_id}, headers=headers)
        except S3Error as error:
            if error.code != "NoSuchUpload" and await self._unknown(bucket, key, upload_id, error):
                raise _no_such_upload(upload_id) from None
            raise
        root = _answer(response.content)
        return PartInfo(number, end - start, (root.findtext("ETag") or "").strip('"'),
                        iso_epoch(root.findtext("LastModified")), checksum_elements(root))

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]], conditions: WriteConditions,
        checksums: SentChecksums | None = None,
    ) -> ObjectMeta:
        sent = checksums or SentChecksums()
        body = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>\"{etag.strip(chr(34))}\"</ETag>"
                       + "".join(f"<{element_name(name)}>{value}</{element_name(name)}>"
                                 for name, value in sent.parts.get(n, {}).items()) + "</Part>"
                       for n, etag in parts)
        document = f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()
        headers = condition_headers(conditions)
        headers.update({header_name(name): value for name, value in sent.whole.items()})
        if sent.checksum_type:
            headers["x-amz-checksum-type"] = sent.checksum_type
        expected = multipart_etag([etag for _, etag in parts])
        try:
            # The conditions are judged here, the key held (moto does not judge If-Match on a Complete), and passed
            # on; an object that is the one these parts make is this upload completed already (a retry), let through.
            response = await conditional_write(
                self.store.locks, bucket, key, conditions, lambda: self.store.head_object(bucket, key),
                lambda: self.store.request("POST", bucket, key, query={"uploadId": upload_id}, body=document,
                                           headers=headers, idempotent=False),
                settled=lambda current: current.etag == expected)
        except S3Error as error:
            if await self._unknown(bucket, key, upload_id, error):
                return await self._completed(bucket, key, upload_id, parts)
            raise
        root = _answer(response.content)
        if root.tag == "Error":
            code = root.findtext("Code") or "InternalError"
            raise S3Error(code, root.findtext("Message") or "", origin_status=None if code in CODES else 500)
        return await self.store.head_object(bucket, key)

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self.store.request("DELETE", bucket, key, query={"uploadId": upload_id})

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> PartListing:
        parts: list[PartInfo] = []
        marker = "0"
        while True:
            root = _answer((await self.store.request("GET", bucket, key, query={
                "uploadId": upload_id, "part-number-marker": marker})).content)
            parts += [PartInfo(int(p.findtext("PartNumber") or 0), int(p.findtext("Size") or 0),
                               (p.findtext("ETag") or "").strip('"'), iso_epoch(p.findtext("LastModified")),
                               checksum_elements(p))
                      for p in root.iter("Part")]
            if (root.findtext("IsTruncated") or "false") != "true":
                algorithm = root.findtext("ChecksumAlgorithm")
                return PartListing(parts, algorithm.lower() if algorithm else None,
                                   root.findtext("ChecksumType") or None)
            marker = root.findtext("NextPartNumberMarker") or str(parts[-1].number)

    async def object_parts(self, bucket: str, key: str) -> list[PartInfo]:
        """The origin's GetObjectAttributes ObjectParts, every page of it; [] from an origin without the call."""
        parts: list[PartInfo] = []
        marker = "0"
        while True:
            try:
                answer = await self.store.request("GET", bucket, key, query={"attributes": ""}, headers={
                    "x-amz-object-attributes": "ObjectParts", "x-amz-part-number-marker": marker})
            except S3Error as error:
                if error.code != "NotImplemented":
                    raise
                return []
            page = _answer(answer.content).find("ObjectParts")
            listed = [PartInfo(int(p.findtext("PartNumber") or 0), int(p.findtext("Size") or 0), "", 0.0,
                               checksum_elements(p)) for p in page.iter("Part")] if page is not None else []
            parts += listed
            if page is None or not listed or (page.findtext("IsTruncated") or "false") != "true":
                return parts
            marker = page.findtext("NextPartNumberMarker") or str(parts[-1].number)

    async def list_uploads(self, bucket: str) -> list[UploadInfo]:
        root = _answer((await self.store.request("GET", bucket, query={"uploads": ""})).content)
        return [UploadInfo(u.findtext("Key") or "", u.findtext("UploadId") or "",
                           iso_epoch(u.findtext("Initiated")), u.findtext("Initiator/ID") or "",
                           (u.findtext("ChecksumAlgorithm") or "").lower() or None, u.findtext("ChecksumType") or None)
                for u in root.iter("Upload")]
