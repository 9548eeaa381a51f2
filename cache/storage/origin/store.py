"""An S3 origin (AWS or any S3-compatible endpoint) as under storage, over one pooled HTTP client.

Every call of the under-storage protocol becomes the matching S3 request, signed with SigV4. Idempotent
calls are retried with backoff on connection failures, timeouts and 500/502/503/504; what still fails
reaches the client as the origin's own S3 error, or as ServiceUnavailable/SlowDown/InternalError with a
message that names the origin. A body that breaks off is resumed where it broke (``cache.storage.origin.reads``);
the multipart calls are made by ``cache.storage.origin.multipart``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import random
import re
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from urllib.parse import quote, urlencode, urlsplit

from cache.s3.errors import CODES, S3Error
from cache.s3.listing import MAX_KEYS
from cache.s3.model import (
    UNCONDITIONAL,
    BucketInfo,
    ListPage,
    NewObject,
    ObjectMeta,
    WriteConditions,
)
from cache.s3.xml import parse_xml, tagging_document, xml_safe
from cache.storage.base import Body, DelegatedMultipart, Origin
from cache.storage.locks import KeyLocks, LocalLocks, conditional_write
from cache.storage.origin.multipart import Uploads
from cache.storage.origin.reads import Opened, resumed
from cache.storage.origin.signing import Signer
from cache.storage.origin.transport import OriginUnreachable, Response, Transport, make_transport
from cache.storage.origin.wire import (
    condition_headers,
    delete_xml,
    http_epoch,
    iso_epoch,
    list_page,
    meta_from_headers,
    object_write_headers,
    origin_error,
    tags_of,
    with_checksum,
)

log = logging.getLogger("s3cache.origin")

_RETRY_STATUS = {500, 502, 503, 504}
_CONTENT_RANGE_RE = re.compile(r"^bytes ([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18})$")
_HIGHEST = "\U0010ffff"  # sorts after every other character: "x/" + _HIGHEST skips all of "x/..."

class Sent:
    """A 2xx answer of the origin: status, headers (lower-case names) and, unless streamed, the body."""

    __slots__ = ("content", "response")

    def __init__(self, response: Response, content: bytes) -> None:
        self.response, self.content = response, content

    @property
    def headers(self) -> Mapping[str, str]:
        return self.response.headers

    @property
    def status(self) -> int:
        return self.response.status


class S3Store(DelegatedMultipart):  # multipart: the S3 calls in cache.storage.origin.multipart
    def __init__(
        self,
        endpoint: str,
        region: str,
        signer: Signer | None,
        *,
        virtual_host: bool = False,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
        retries: int = 3,
        max_connections: int = 64,
        backoff_base_s: float = 0.1,
        http_client: str = "aiohttp",
        tls: ssl.SSLContext | None = None,
        transport: Transport | None = None,
        locks: KeyLocks | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        parts = urlsplit(self.endpoint)
        self.scheme, self.host = parts.scheme, parts.netloc
        self.virtual_host = virtual_host
        self.region = region
        self.signer = signer
        self.retries = retries
        self.backoff_base_s = backoff_base_s
        self.http = transport or make_transport(http_client, connect_timeout_s=connect_timeout_s,
                                                read_timeout_s=read_timeout_s, max_connections=max_connections,
                                                tls=tls)
        # Held by a conditional write from its judgement to its end: a worker's own, or the cluster's (Redis).
        self.locks: KeyLocks = locks or LocalLocks(10.0)
        self._uploads = Uploads(self)

    async def aclose(self) -> None:
        await self.http.aclose()

    # ---- the wire ------------------------------------------------------------------------------

    def _build(
        self, method: str, bucket: str, key: str, query: Mapping[str, str] | None, headers: Mapping[str, str] | None,
    ) -> tuple[str, str, dict[str, str]]:
        """(URL, request target, signed headers) of one request."""
        host, base = self.host, self.endpoint
        if self.virtual_host and bucket:  # bucket.host/key
            host = f"{bucket}.{self.host}"
            base = f"{self.scheme}://{host}"
            path = "/" + quote(key, safe="/~")
        else:
            path = "/" + quote(bucket, safe="") if bucket else "/"
            if key:
                path += "/" + quote(key, safe="/~")
        if query:
            path += "?" + "&".join(
                f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" if v != "" else quote(k, safe="-_.~")
                for k, v in sorted(query.items()))
        sent = {"host": host, **(headers or {})}
        if self.signer is not None:
            sent = self.signer.sign(method, path, sent)
        return base + path, path, sent

    async def request(
        self, method: str, bucket: str = "", key: str = "", query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None, body: Body | bytes | None = None, stream: bool = False,
        idempotent: bool = True,
    ) -> Sent:
        """Send one S3 request; returns a 2xx response (its body read, unless stream) or raises S3Error."""
        attempt = 0
        while True:
            url, target, sent = self._build(method, bucket, key, query, headers)
            try:
                response = await self.http.send(method, url, target, sent, body)
                content = b"" if stream else await response.read()
            except OriginUnreachable as exc:
                if idempotent and attempt < self.retries:
                    attempt += 1
                    await self.backoff(attempt, f"{method} {target}: {exc}")
                    continue
                raise S3Error("ServiceUnavailable", f"The origin {self.endpoint} is unreachable: "
                              f"{exc.kind}") from None
            if response.status < 300:
                return Sent(response, content)
            if stream:
                content = b""
                if method != "HEAD":
                    try:
                        content = await response.read()
                    except OriginUnreachable:
                        pass
            await response.aclose()
            if response.status in _RETRY_STATUS and idempotent and attempt < self.retries:
                attempt += 1
                await self.backoff(attempt, f"{method} {target}: HTTP {response.status}")
                continue
            raise origin_error(response.status, response.headers, content, self.endpoint, bucket, key)

    async def backoff(self, attempt: int, why: str) -> None:
        """Wait before retry attempt: exponential from backoff_base_s, with jitter (0.5x to 1.5x)."""
        delay = self.backoff_base_s * (2 ** (attempt - 1)) * (0.5 + random.random())
        log.warning("origin request failed (%s); retry %d/%d in %.2fs", why, attempt, self.retries, delay)
        await asyncio.sleep(delay)

    # ---- buckets -------------------------------------------------------------------------------

    async def list_buckets(self) -> list[BucketInfo]:
        root = parse_xml((await self.request("GET")).content)
        return [BucketInfo(b.findtext("Name") or "", iso_epoch(b.findtext("CreationDate")))
                for b in root.iter("Bucket")]

    async def head_bucket(self, bucket: str) -> None:
        await self.request("HEAD", bucket)

    async def create_bucket(self, bucket: str) -> None:
        body = b""
        if self.region != "us-east-1":
            body = (f'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                    f"<LocationConstraint>{self.region}</LocationConstraint></CreateBucketConfiguration>").encode()
        await self.request("PUT", bucket, body=body, idempotent=False)

    async def delete_bucket(self, bucket: str) -> None:
        await self.request("DELETE", bucket)

    async def get_bucket_tags(self, bucket: str) -> dict[str, str]:
        try:
            response = await self.request("GET", bucket, query={"tagging": ""})
        except S3Error as error:
            if error.code == "NoSuchTagSet":
                return {}
            raise
        return tags_of(parse_xml(response.content))

    async def put_bucket_tags(self, bucket: str, tags: dict[str, str] | None) -> None:
        if tags is None:
            await self.request("DELETE", bucket, query={"tagging": ""})
        else:
            await self.request("PUT", bucket, query={"tagging": ""}, body=tagging_document(tags))

    # ---- objects -------------------------------------------------------------------------------

    async def head_object(self, bucket: str, key: str, checksums: bool = False) -> ObjectMeta:
        try:
            response = await self.request("HEAD", bucket, key, headers={"x-amz-checksum-mode": "ENABLED"})
        except S3Error as error:
            if error.code == "NoSuchKey":
                # A 404 to a HEAD has no body to tell a missing key from a missing bucket: ask.
                await self.head_bucket(bucket)  # NoSuchBucket if that is what is missing
            raise
        return meta_from_headers(key, response.headers)

    async def open_object(self, bucket: str, key: str, first_byte: int | None = None) -> OriginObject:
        return OriginObject(self, bucket, await self.head_object(bucket, key))

    async def _head_part(self, bucket: str, key: str, number: int) -> Sent:
        try:
            return await self.request("HEAD", bucket, key, query={"partNumber": str(number)})
        except S3Error as error:
            if error.code == "InvalidRange":  # a 416 to a HEAD has no body to name its code: S3's is this
                raise S3Error("InvalidPartNumber") from None
            if error.code == "NoSuchKey":
                await self.head_bucket(bucket)
            raise

    async def head_part(self, bucket: str, key: str, number: int) -> tuple[ObjectMeta, int, int]:
        """The origin's own part: a HEAD with partNumber, whose 206 names the part's place in the object
        (Content-Range) and its parts count (x-amz-mp-parts-count, absent for an object not uploaded in parts)."""
        response = await self._head_part(bucket, key, number)
        headers = response.headers
        counted = headers.get("x-amz-mp-parts-count", "")
        parts_count = int(counted) if counted.isascii() and counted.isdigit() else None
        match = _CONTENT_RANGE_RE.match(headers.get("content-range", ""))
        if match is not None:
            start, last, total = (int(group) for group in match.groups())
            meta = replace(meta_from_headers(key, headers), size=total, parts_count=parts_count, checksums={},
                           checksums_known=False)
            return meta, start, last + 1
        # An origin that answers a part without its place in the object (moto: 200 with the part's own length and
        # ETag): the object's metadata from a HEAD, the part's start from the lengths of the parts before it.
        meta = replace(await self.head_object(bucket, key), parts_count=parts_count)
        if parts_count is None:
            return meta, 0, meta.size  # answered whole: an object not uploaded in parts
        start = 0
        for earlier in range(1, number):
            start += int((await self._head_part(bucket, key, earlier)).headers.get("content-length", "0"))
        end = start + int(headers.get("content-length", "0"))
        if end > meta.size:
            raise S3Error("ServiceUnavailable", "The object changed while its parts were read; retry")
        return meta, start, end

    async def open_part(self, bucket: str, key: str, number: int) -> tuple[OriginObject, int, int]:
        meta, start, end = await self.head_part(bucket, key, number)
        return OriginObject(self, bucket, meta), start, end

    async def read_range(self, bucket: str, key: str, etag: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [start, end) of the object version etag; PreconditionFailed if it changed meanwhile."""
        response = await self.request("GET", bucket, key, headers={
            "range": f"bytes={start}-{end - 1}", "if-match": f'"{etag}"'}, stream=True)
        async for chunk in resumed(self, response, bucket, key, etag, start, end):
            yield chunk

    async def open_range(
        self, bucket: str, key: str, start: int, end: int, whole: bool = False,
    ) -> tuple[ObjectMeta, AsyncIterator[bytes]]:
        """A cold read's one origin request: bytes [start, end) of whatever version is current, with that
        version's metadata from the same answer. whole: the client reads the whole object, so ask for it whole
        (in checksum mode: the answer then carries the whole-object checksums a ranged one lacks) and cut the
        body at end; else a ranged GET, whose size comes from Content-Range. InvalidRange when start is past
        the object's end (an empty object too)."""
        headers = {"x-amz-checksum-mode": "ENABLED"} if whole else {"range": f"bytes={start}-{end - 1}"}
        response = await self.request("GET", bucket, key, headers=headers, stream=True)
        meta = meta_from_headers(key, response.headers)
        total = response.headers.get("content-range", "").rpartition("/")[2]
        if response.response.status == 206 and total.isdigit():
            meta = replace(meta, size=int(total), checksums={}, checksums_known=False)
        elif start > 0:
            await response.response.aclose()
            raise S3Error("InvalidRange", f"The origin {self.endpoint} answered a ranged GET whole")
        # The version this answer is of pins any resumption of its body; past the object's end nothing is owed.
        return meta, Opened(resumed(self, response, bucket, key, meta.etag, start, min(end, meta.size)), response)

    async def put_object(
        self, bucket: str, key: str, body: Body, new: NewObject, conditions: WriteConditions, size: int | None = None
    ) -> ObjectMeta:
        # Judged here, the key held, whatever the origin does with the condition (moto judges it apart from its
        # write); passed on too, so an origin that judges it atomically guards against writers past s3cache as well.
        return await conditional_write(self.locks, bucket, key, conditions, lambda: self.head_object(bucket, key),
                                       lambda: self._put(bucket, key, body, new, conditions, size))

    async def _put(
        self, bucket: str, key: str, body: Body, new: NewObject, conditions: WriteConditions, size: int | None
    ) -> ObjectMeta:
        headers = object_write_headers(new)
        headers.update(condition_headers(conditions))
        body = with_checksum(headers, body, size, new.checksums, new.trailing_checksum)
        response = await self.request("PUT", bucket, key, headers=headers, body=body, idempotent=False)
        return ObjectMeta(key=key, size=size or 0, etag=response.headers.get("etag", "").strip('"'),
                          last_modified=http_epoch(response.headers.get("date")), headers=new.headers,
                          user_metadata=new.user_metadata, tags=new.tags, tag_count=len(new.tags))

    async def copy_object(
        self, src_bucket: str, src_key: str, bucket: str, key: str, new: NewObject | None, tags: dict[str, str] | None,
        conditions: WriteConditions = UNCONDITIONAL,
    ) -> ObjectMeta:
        headers = {"x-amz-copy-source": f"/{quote(src_bucket, safe='')}/{quote(src_key, safe='/~')}"}
        if new is not None:
            headers.update(object_write_headers(NewObject(new.headers, new.user_metadata)))
            headers["x-amz-metadata-directive"] = "REPLACE"
        if tags is not None:
            headers["x-amz-tagging-directive"] = "REPLACE"
            headers["x-amz-tagging"] = urlencode(tags)
        headers.update(condition_headers(conditions))
        response = await conditional_write(self.locks, bucket, key, conditions, lambda: self.head_object(bucket, key),
                                           lambda: self.request("PUT", bucket, key, headers=headers))
        root = parse_xml(response.content)
        if root.tag == "Error":  # S3 may answer 200 and report the failure in the body
            raise S3Error(root.findtext("Code") or "InternalError", root.findtext("Message") or "",
                          origin_status=500)
        return await self.head_object(bucket, key)

    async def delete_object(self, bucket: str, key: str, conditions: WriteConditions = UNCONDITIONAL) -> None:
        await conditional_write(self.locks, bucket, key, conditions, lambda: self.head_object(bucket, key),
                                lambda: self.request("DELETE", bucket, key, headers=condition_headers(conditions)))

    async def delete_objects(
        self, bucket: str, keys: list[str], if_match: list[str | None] | None = None,
    ) -> list[S3Error | None]:
        """One DeleteObjects request for the keys XML can carry; one DELETE each for any others, and for each key
        deleted only if its ETag matches (judged under the key's lock, as a conditional DeleteObject is)."""
        outcomes: dict[int, S3Error | None] = {}
        for i, etag in enumerate(if_match or []):
            if etag is not None:
                try:
                    await self.delete_object(bucket, keys[i], WriteConditions(if_match=etag))
                    outcomes[i] = None
                except S3Error as failure:
                    outcomes[i] = failure
        batch = [i for i, key in enumerate(keys) if xml_safe(key) and i not in outcomes]
        if batch:
            body = delete_xml([keys[i] for i in batch])
            headers = {"content-md5": base64.b64encode(hashlib.md5(body).digest()).decode(),
                       "content-type": "application/xml"}
            # Deleting is idempotent (an absent key counts as deleted): safe to retry.
            root = parse_xml((await self.request("POST", bucket, query={"delete": ""}, headers=headers,
                                                 body=body)).content)
            failed = {}
            for error in root.iter("Error"):
                code = error.findtext("Code") or "InternalError"
                failed[error.findtext("Key") or ""] = S3Error(code, error.findtext("Message") or "",
                                                              origin_status=None if code in CODES else 500)
            for i in batch:
                outcomes[i] = failed.get(keys[i])
        for i in (i for i in range(len(keys)) if i not in outcomes):
            try:
                await self.delete_object(bucket, keys[i])
                outcomes[i] = None
            except S3Error as error:
                outcomes[i] = error
        return [outcomes[i] for i in range(len(keys))]

    async def get_object_tags(self, bucket: str, key: str) -> dict[str, str]:
        return tags_of(parse_xml((await self.request("GET", bucket, key, query={"tagging": ""})).content))

    async def put_object_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        if tags:
            await self.request("PUT", bucket, key, query={"tagging": ""}, body=tagging_document(tags))
        else:
            await self.request("DELETE", bucket, key, query={"tagging": ""})

    async def list_objects(self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int) -> ListPage:
        if max_keys <= 0:
            return ListPage([], [], False, None)
        query = {"list-type": "2", "max-keys": str(min(max_keys, MAX_KEYS)), "encoding-type": "url"}
        if prefix:
            query["prefix"] = prefix
        if delimiter:
            query["delimiter"] = delimiter
        if marker:
            # A marker that is a common prefix of this listing must skip everything under it, not just itself.
            rest = marker[len(prefix):] if marker.startswith(prefix) else ""
            rolled_up = bool(delimiter) and rest.endswith(delimiter) and rest.find(delimiter) == len(rest) - len(delimiter)
            query["start-after"] = marker + _HIGHEST if rolled_up else marker
        return list_page(parse_xml((await self.request("GET", bucket, query=query)).content))


class OriginObject:
    """An origin object read straight from the origin (the cache layer wraps this with blocks)."""

    def __init__(self, store: S3Store, bucket: str, meta: ObjectMeta) -> None:
        self.store, self.bucket, self.meta = store, bucket, meta

    def iter_range(self, start: int, end: int, chunk_bytes: int) -> AsyncIterator[bytes]:
        return self.store.read_range(self.bucket, self.meta.key, self.meta.etag, start, end)

    async def read_small(self, start: int, end: int) -> bytes:
        return b"".join([chunk async for chunk in self.iter_range(start, end, end - start)]) if end > start else b""

    def close(self) -> None:
        pass


_: type[Origin] = S3Store  # mypy proves the origin backend speaks the whole protocol, cold ranges included
