"""Multipart uploads at an S3 origin: the seven multipart calls as the S3 requests they are.

The store delegates them here and lends its wire (signed, retried ``request``) and its HEAD; nothing of an
upload is kept on this side: the origin holds the upload and its parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol
from urllib.parse import quote

from cache.s3.errors import CODES, S3Error
from cache.s3.model import NewObject, ObjectMeta, PartInfo, UploadInfo, WriteConditions
from cache.s3.xml import parse_xml
from cache.storage.base import Body
from cache.storage.origin.wire import condition_headers, http_epoch, iso_epoch, object_write_headers


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
    async def head_object(self, bucket: str, key: str) -> ObjectMeta: ...


class Uploads:
    """Multipart calls of an origin store, which delegates them here and lends its request and head_object."""

    def __init__(self, store: UploadHost) -> None:
        self.store = store

    async def create_upload(self, bucket: str, key: str, new: NewObject, initiator: str) -> str:
        response = await self.store.request("POST", bucket, key, query={"uploads": ""},
                                            headers=object_write_headers(new), idempotent=False)
        return parse_xml(response.content).findtext("UploadId") or ""

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Body, size: int | None = None
    ) -> PartInfo:
        headers = {"content-length": str(size)} if size is not None else {}
        response = await self.store.request("PUT", bucket, key, query={"partNumber": str(number), "uploadId": upload_id},
                                            headers=headers, body=body, idempotent=False)
        return PartInfo(number, size or 0, response.headers.get("etag", "").strip('"'),
                        http_epoch(response.headers.get("date")))

    async def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, number: int, src_bucket: str, src_key: str, start: int, end: int,
    ) -> PartInfo:
        headers = {"x-amz-copy-source": f"/{quote(src_bucket, safe='')}/{quote(src_key, safe='/~')}",
                   "x-amz-copy-source-range": f"bytes={start}-{end - 1}"}
        response = await self.store.request("PUT", bucket, key, query={"partNumber": str(number), "uploadId": upload_id},
                                            headers=headers)
        root = parse_xml(response.content)
        return PartInfo(number, end - start, (root.findtext("ETag") or "").strip('"'),
                        iso_epoch(root.findtext("LastModified")))

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]], conditions: WriteConditions
    ) -> ObjectMeta:
        body = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>\"{etag.strip(chr(34))}\"</ETag></Part>"
                       for n, etag in parts)
        document = f"<CompleteMultipartUpload>{body}</CompleteMultipartUpload>".encode()
        response = await self.store.request("POST", bucket, key, query={"uploadId": upload_id}, body=document,
                                            headers=condition_headers(conditions), idempotent=False)
        root = parse_xml(response.content)
        if root.tag == "Error":
            code = root.findtext("Code") or "InternalError"
            raise S3Error(code, root.findtext("Message") or "", origin_status=None if code in CODES else 500)
        return await self.store.head_object(bucket, key)

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self.store.request("DELETE", bucket, key, query={"uploadId": upload_id})

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        parts: list[PartInfo] = []
        marker = "0"
        while True:
            root = parse_xml((await self.store.request("GET", bucket, key, query={
                "uploadId": upload_id, "part-number-marker": marker})).content)
            parts += [PartInfo(int(p.findtext("PartNumber") or 0), int(p.findtext("Size") or 0),
                               (p.findtext("ETag") or "").strip('"'), iso_epoch(p.findtext("LastModified")))
                      for p in root.iter("Part")]
            if (root.findtext("IsTruncated") or "false") != "true":
                return parts
            marker = root.findtext("NextPartNumberMarker") or str(parts[-1].number)

    async def list_uploads(self, bucket: str) -> list[UploadInfo]:
        root = parse_xml((await self.store.request("GET", bucket, query={"uploads": ""})).content)
        return [UploadInfo(u.findtext("Key") or "", u.findtext("UploadId") or "",
                           iso_epoch(u.findtext("Initiated")), u.findtext("Initiator/ID") or "")
                for u in root.iter("Upload")]
