"""A seeded fuzz loop through a real worker: valid S3 requests, mutated (method, path, query, headers, body), sent
over raw sockets. Whatever comes in, the worker never answers 500 InternalError, stays up, answers well-formed HTTP
(S3 error XML for every error of a well-formed request) and leaves an object no request named unchanged.

The seed is printed and taken from S3CACHE_FUZZ_SEED when set (a fixed one by default; `random` for a new one),
so a failure replays:
    S3CACHE_FUZZ_SEED=<seed> .venv/bin/pytest tests/e2e/test_fuzz.py
S3CACHE_FUZZ_REQUESTS sets the number of requests (1500 by default, per backend).
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import httpx

from cache.s3.errors import CODES
from proxy.operations import OPERATIONS, SELECTORS, UNSUPPORTED
from rig.processes import Worker

REQUESTS = int(os.environ.get("S3CACHE_FUZZ_REQUESTS", "1500"))
TIMEOUT_S = 20.0
ALLOWED_5XX = {501, 503}  # NotImplemented, SlowDown / ServiceUnavailable: never 500


@dataclass
class Fuzzed:
    method: str
    path: str  # the request-target's path, as sent (already escaped, or deliberately not)
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    content_length: str | None = "auto"  # "auto": the body's true length; None: no Content-Length header
    incomplete: bool = False  # the framing promises more than is sent: the client half-closes, no answer is owed
    valid_http: bool = True  # False: not well-formed HTTP/1.1, the HTTP layer may answer its own plain 400
    notes: list[str] = field(default_factory=list)

    def wire(self, port: int) -> bytes:
        target = self.path + (f"?{self.query}" if self.query else "")
        lines = [f"{self.method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        headers = list(self.headers)
        if self.content_length == "auto":
            if self.body or self.method in ("PUT", "POST"):
                headers.append(("Content-Length", str(len(self.body))))
        elif self.content_length is not None:
            headers.append(("Content-Length", self.content_length))
        headers.append(("Connection", "close"))
        lines += [f"{name}: {value}" for name, value in headers]
        return "\r\n".join(lines).encode("latin-1", "replace") + b"\r\n\r\n" + self.body

    def summary(self) -> str:
        return (f"{self.method} {self.path[:120]}?{self.query[:120]} headers={self.headers!r:.300} "
                f"body={self.body[:80]!r} cl={self.content_length} notes={self.notes}")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


# ---- the requests ----------------------------------------------------------------------------------

ODD_PATH_PIECES = ["%00", "%FF", "%C0%AF", "%2e%2e", "%2F", "%25", "%", "%2", "%zz", "%C3%A9", "%C2%85", "%E2%80%8B",
                   "..", ".", "//", "~", "!$&'()*+,;=:@", "%20", "+", "%0D%0A", "%7F", "%EF%BF%BF", "%F0%9F%98%80"]
RAW_PATH_PIECES = [" ", "\x7f", "\xe9", "#", "\t"]  # not allowed raw in a request-target
BUCKET_NAMES = ["fz-nosuch-bucket", "UPPER", "a", "x" * 64, "-dash", "dot..dot", "192.168.1.1", "under_score",
                "xn--bucket", "bucket-s3alias", "fz-made-by-fuzz"]
QUERY_KEYS = sorted({*SELECTORS, *UNSUPPORTED, "partNumber", "versionId", "prefix", "delimiter", "max-keys",
                     "continuation-token", "start-after", "marker", "encoding-type", "fetch-owner", "max-uploads",
                     "max-parts", "part-number-marker", "key-marker", "upload-id-marker", "response-content-type",
                     "response-content-disposition", "response-cache-control", "X-Amz-Algorithm", "X-Amz-Credential",
                     "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature", "AWSAccessKeyId",
                     "Expires", "Signature", "X-Amz-Security-Token", "x-id"})
QUERY_VALUES = ["", "1", "0", "-1", "2", "10001", "999999999999999999999", "9" * 300, "abc", "null", "%", "%zz",
                "%C2%B2", "url", "true", "AKID/20260101/us-east-1/s3/aws4_request", "20260101T000000Z", "604801",
                "AWS4-HMAC-SHA256", "a/b", "%00", "\u00e9", "x" * 2000]
RANGES = ["bytes=0-0", "bytes=0-", "bytes=-1", "bytes=5-2", "bytes=-0", "bytes=0-1,3-4", "bytes=99999999-",
          "bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 30, "bytes = 1 - 2", "items=0-1", "bytes=", "bytes=-",
          "bytes=x-y", "bytes=\u00a01-2", ""]
SHA = ["UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
       "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "0" * 64, "z" * 64, "abc", ""]
AUTHORIZATIONS = [
    "AWS4-HMAC-SHA256 Credential=fuzz/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + "0" * 64,
    "AWS4-HMAC-SHA256 Credential=/x, Signature=", "AWS4-HMAC-SHA256", "AWS fuzz:sig", "AWS :", "AWS x", "Bearer ",
    "Bearer abc.def.ghi", "Basic Zm9vOmJhcg==", "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request,Signature=x",
    "x" * 300,
]


DEFAULT_SEED = 20261201


def xml_bodies(rng: random.Random, keys: list[str]) -> bytes:
    key = rng.choice([*keys, "", "x" * 1100, "a&amp;b", "<", "\u00e9"])
    documents = [
        f"<Delete><Object><Key>{key}</Key></Object></Delete>",
        f"<Delete><Quiet>true</Quiet><Object><Key>{key}</Key><VersionId>v1</VersionId></Object></Delete>",
        "<Delete></Delete>", "<Delete><Object></Object></Delete>",
        "<Delete>" + "<Object><Key>k</Key></Object>" * 1001 + "</Delete>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"e\"</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>\u00b2</PartNumber><ETag>e</ETag></Part>"
        "</CompleteMultipartUpload>",
        f"<CompleteMultipartUpload><Part><PartNumber>{'9' * 5000}</PartNumber><ETag>e</ETag></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
        "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
        "<Tagging><TagSet><Tag><Key>aws:x</Key><Value>b</Value></Tag></TagSet></Tagging>",
        "<Tagging><TagSet>" + "<Tag><Key>k</Key><Value>v</Value></Tag>" * 2 + "</TagSet></Tagging>",
        "<Tagging/>", "<Tagging><TagSet><Tag><Key/></Tag></TagSet></Tagging>",
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "v">]><Tagging>&e;</Tagging>',
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&e;</Key></Object></Delete>',
        "<AccessControlPolicy><Owner><ID>x</ID></Owner></AccessControlPolicy>",
        "<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>",
        '<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>k</Key></Object></Delete>',
        "<a>" * 200 + "</a>" * 200, "\x00\xff", "<Delete><Object><Key>k</Key></Object>",
    ]
    data = rng.choice(documents).encode("utf-8")
    if rng.random() < 0.3:
        data = data[:rng.randrange(len(data) + 1)]
    return data


def aws_chunked(rng: random.Random, payload: bytes) -> bytes:
    out = b""
    pos = 0
    while pos < len(payload):
        size = rng.randint(1, 20)
        chunk = payload[pos:pos + size]
        pos += size
        out += b"%x" % len(chunk) + (b";chunk-signature=" + b"0" * 64 if rng.random() < 0.5 else b"") + b"\r\n"
        out += chunk + b"\r\n"
    out += b"0\r\n"
    if rng.random() < 0.5:
        out += b"x-amz-checksum-crc32:" + base64.b64encode(os.urandom(4)) + b"\r\n"
    out += b"\r\n"
    damage = rng.random()
    if damage < 0.15:
        out = out[:rng.randrange(len(out) + 1)]
    elif damage < 0.3:
        at = rng.randrange(len(out))
        out = out[:at] + bytes([rng.randrange(256)]) + out[at + 1:]
    elif damage < 0.4:
        out = b"zz\r\n" + out
    return out


def base_request(rng: random.Random, bucket: str, keys: list[str], canary: str) -> Fuzzed:
    """A well-formed request of one of the operations s3cache serves."""
    operation = rng.choice(OPERATIONS)
    method, level, selector = operation.route
    key = rng.choice(keys)
    path = "/" if level == "service" else f"/{bucket}" if level == "bucket" else f"/{bucket}/{quote(key)}"
    query: list[str] = []
    headers: list[tuple[str, str]] = []
    body = b""
    sub = selector.removesuffix("+copy")
    if sub == "uploadId":
        query += ["uploadId=" + rng.choice(["fuzz-upload", "", "x" * 40]), "partNumber=1"]
    elif sub == "list-type":
        query.append("list-type=2")
    elif sub:
        query.append(sub)
    if selector.endswith("+copy"):
        headers.append(("x-amz-copy-source", rng.choice([f"/{bucket}/{quote(canary)}", f"{bucket}/{quote(key)}"])))
    if operation.name in ("PutObject", "UploadPart"):
        body = os.urandom(rng.randint(0, 300))
    elif operation.name in ("DeleteObjects", "CompleteMultipartUpload", "PutObjectTagging", "PutBucketTagging",
                            "PutBucketAcl", "PutObjectAcl", "CreateBucket"):
        body = xml_bodies(rng, keys)
    if operation.name == "CreateBucket":
        path = f"/{rng.choice(BUCKET_NAMES)}"  # never a bucket another test uses
    if operation.name == "DeleteObjects":
        headers.append(("content-md5", base64.b64encode(hashlib.md5(body).digest()).decode()))
    return Fuzzed(method, path, "&".join(query), headers, body, notes=[operation.name])


def mutate(rng: random.Random, request: Fuzzed, bucket: str, keys: list[str], canary: str) -> None:
    chunked = False
    for _ in range(rng.randint(0, 4)):
        kind = rng.choice(["method", "path", "path", "query", "query", "header", "header", "header", "body",
                           "length", "chunked", "many-headers"])
        request.notes.append(kind)
        if kind == "method":
            request.method = rng.choice(["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "TRACE",
                                         "PROPFIND", "get", "X" * 30])
            if request.method in ("get", "X" * 30):  # llhttp knows its methods, in upper case: no HTTP to it
                request.valid_http = False
        elif kind == "path":
            level = rng.random()
            if level < 0.15:
                request.path = "/"
            elif level < 0.3:
                request.path = f"/{rng.choice(BUCKET_NAMES)}" + rng.choice(["", "/k", "/" + quote(rng.choice(keys))])
            else:
                pieces = [quote(rng.choice(keys))] + [rng.choice(ODD_PATH_PIECES) for _ in range(rng.randint(1, 4))]
                rng.shuffle(pieces)
                request.path = f"/{bucket}/" + "".join(pieces)
                if rng.random() < 0.05:
                    request.path = f"/{bucket}/" + "k" * 1100
                if rng.random() < 0.05:
                    request.path += rng.choice(RAW_PATH_PIECES)
                    request.valid_http = False
            if quote(canary) in request.path:  # the canary is only ever read
                request.path = f"/{bucket}/not-the-canary"
        elif kind == "query":
            items = request.query.split("&") if request.query else []
            action = rng.random()
            if action < 0.6:
                name = rng.choice(QUERY_KEYS)
                value = rng.choice(QUERY_VALUES)
                items.append(name if rng.random() < 0.3 else f"{quote(name)}={quote(value, safe='%')}")
            elif action < 0.8 and items:
                items.pop(rng.randrange(len(items)))
            else:
                items.append(rng.choice(["&&", "=", "==x", "a=%", "%ZZ=1", "x=%C2", "%00", "a=b=c"]))
            request.query = "&".join(items)
        elif kind == "header":
            name, value = rng.choice([
                ("range", rng.choice(RANGES)),
                ("x-amz-content-sha256", rng.choice(SHA)),
                ("x-amz-decoded-content-length", rng.choice(["0", "5", "-1", "abc", "9" * 30])),
                ("content-md5", rng.choice(["", "abc", "1B2M2Y8AsgTpgAmY7PhCfg==", "%%%"])),
                ("x-amz-checksum-crc32", rng.choice(["", "AAAAAA==", "zzzz", "AAAAAAAA"])),
                ("x-amz-checksum-sha256", rng.choice(["", "x", base64.b64encode(os.urandom(32)).decode()])),
                ("x-amz-trailer", rng.choice(["x-amz-checksum-crc32", "x-amz-checksum-nope", "", "junk"])),
                ("x-amz-sdk-checksum-algorithm", rng.choice(["CRC32", "MD5", ""])),
                ("x-amz-copy-source", rng.choice([f"/{bucket}/{quote(canary)}", "/", "%", "/nosuch/k", "b",
                                                  f"/{bucket}/{quote(canary)}?versionId=v1", "/\u00e9/%FF"])),
                ("x-amz-copy-source-range", rng.choice(["bytes=0-0", "bytes=5-1", "bytes=0-" + "9" * 5000, "x"])),
                ("x-amz-metadata-directive", rng.choice(["COPY", "REPLACE", "junk"])),
                ("x-amz-tagging", rng.choice(["a=b", "a=b&a=c", "aws:x=1", "=", "%", "k=" + "v" * 300])),
                ("x-amz-meta-fuzz", rng.choice(["\u00e9", "x" * 3000, "", "a\x7fb"])),
                ("x-amz-acl", rng.choice(["private", "public-read", "bucket-owner-full-control", "junk"])),
                ("x-amz-grant-read", "id=x"),
                ("authorization", rng.choice(AUTHORIZATIONS)),
                ("x-amz-date", rng.choice(["20260101T000000Z", "junk", ""])),
                ("x-amz-security-token", rng.choice(["", "abc"])),
                ("if-match", rng.choice(["*", '"abc"', "", "W/\"x\""])),
                ("if-none-match", rng.choice(["*", '"abc"', ""])),
                ("if-modified-since", rng.choice(["Wed, 21 Oct 2015 07:28:00 GMT", "junk", ""])),
                ("if-unmodified-since", rng.choice(["Wed, 21 Oct 2015 07:28:00 GMT", "Mon, 99 Foo 9999"])),
                ("expect", rng.choice(["100-continue", "junk"])),
                ("content-type", rng.choice(["application/xml", "", "x" * 500])),
                ("content-encoding", rng.choice(["aws-chunked", "gzip", "aws-chunked,gzip"])),
                ("x-amz-storage-class", rng.choice(["STANDARD", "GLACIER", "junk"])),
                ("x-amz-server-side-encryption", rng.choice(["AES256", "aws:kms", "junk"])),
                ("x-amz-expected-bucket-owner", rng.choice(["123456789012", "x"])),
                ("x-amz-request-payer", "requester"),
                ("cache-control", "no-cache"),
                (rng.choice(["x-fuzz", "x-amz-fuzz", "x-amz-meta-" + "m" * 50]), rng.choice(["", "v", "\u00e9"])),
            ])
            request.headers = [(n, v) for n, v in request.headers if n != name] + [(name, value)]
            if any(c == "\x7f" or (c < " " and c != "\t") for c in value):  # a control character: no HTTP
                request.valid_http = False
        elif kind == "body":
            choice = rng.random()
            if choice < 0.4:
                request.body = xml_bodies(rng, keys)
            elif choice < 0.6:
                request.body = os.urandom(rng.randint(0, 200))
            elif choice < 0.85:
                payload = os.urandom(rng.randint(0, 60))
                request.body = aws_chunked(rng, payload)
                request.headers.append(("x-amz-content-sha256", rng.choice(SHA[1:4])))
                if rng.random() < 0.7:
                    request.headers.append(("x-amz-decoded-content-length", str(len(payload))))
            else:
                request.body = request.body[:rng.randrange(len(request.body) + 1)]
        elif kind == "length":
            true = len(request.body)
            lie = rng.choice(["longer", "shorter", "zero", "none", "junk", "negative", "huge"])
            if lie == "longer":
                request.content_length, request.incomplete = str(true + rng.randint(1, 50)), True
            elif lie == "shorter" and true:
                request.content_length = str(rng.randrange(true))
            elif lie == "zero":
                request.content_length = "0"
            elif lie == "none":
                request.content_length = None
            elif lie == "huge":
                request.content_length, request.incomplete = str(6 << 30), True
            else:  # not a number: no well-formed HTTP message
                request.content_length = "abc" if lie == "junk" else "-1"
                request.valid_http = False
        elif kind == "chunked":
            chunked = True
        elif kind == "many-headers":
            count = rng.choice([50, 99, 101, 150])
            request.headers += [(f"x-fuzz-{i}", "v" * rng.choice([1, 100])) for i in range(count)]
    if chunked:  # HTTP chunked framing instead of Content-Length (never both), sometimes cut short
        body = request.body
        framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
        framed += b"0\r\n\r\n"
        if rng.random() < 0.3:
            framed = framed[:rng.randrange(len(framed) + 1)]
            request.incomplete = True
            request.valid_http = False  # a cut chunk header may be no HTTP at all
        request.body = framed
        request.content_length = None
        request.headers.append(("Transfer-Encoding", "chunked"))
    if request.content_length == "auto" and request.method in ("GET", "HEAD", "DELETE", "OPTIONS") and \
            not request.body:
        request.content_length = None


# ---- the wire --------------------------------------------------------------------------------------


def read_answer(sock: socket.socket, head_request: bool) -> Answer | None:
    """The final response on sock (1xx skipped), framed by Content-Length, chunked or the close; None when the
    server closed without one. Fails on anything that is not HTTP/1.1."""
    reader = sock.makefile("rb")
    while True:
        status_line = reader.readline(65537)
        if not status_line:
            return None
        assert status_line.startswith(b"HTTP/1.1 ") and status_line.endswith(b"\r\n"), status_line[:200]
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while (line := reader.readline(65537)) not in (b"\r\n", b""):
            assert line.endswith(b"\r\n") and b":" in line, line[:200]
            name, _, value = line.decode("latin-1").partition(":")
            assert name and name == name.strip() and " " not in name, line[:200]
            headers[name.lower()] = value.strip()
        if 100 <= status < 200:
            continue
        break
    if head_request or status in (204, 304):
        return Answer(status, headers, b"")
    if "content-length" in headers:
        length = int(headers["content-length"])
        body = reader.read(length)
        assert len(body) == length, f"short body: {len(body)} of {length}"
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(reader.readline(1024).split(b";")[0], 16)
            if size == 0:
                while reader.readline(1024) not in (b"\r\n", b""):
                    pass
                break
            body += reader.read(size)
            assert reader.readline(3) == b"\r\n"
    else:
        body = reader.read()
    return Answer(status, headers, body)


def send(port: int, request: Fuzzed) -> Answer | None:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        try:
            sock.sendall(request.wire(port))
            if request.incomplete:
                sock.shutdown(socket.SHUT_WR)  # all there will be: the server sees the body end early
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the whole request went out: the answer may still be read
        try:
            return read_answer(sock, request.method == "HEAD")
        except ConnectionResetError:
            return None


def moto_fault(answer: Answer, request: Fuzzed, backend: str) -> bool:
    """moto (the test origin) answers 500 to a DeleteObjectTagging of a key it does not hold (AWS: 404 NoSuchKey);
    the worker rightly passes an origin's 500 on. Only that one, named by the worker's message, is excused."""
    return backend == "s3" and answer.status == 500 and b"answered HTTP 500" in answer.body and \
        request.method == "DELETE" and "tagging" in [item.partition("=")[0] for item in request.query.split("&")]


def check(answer: Answer | None, request: Fuzzed, where: str, backend: str) -> str | None:
    """Fails unless answer is acceptable for request; the error code (or status) seen, for the tally."""
    if answer is None:
        assert request.incomplete or not request.valid_http, f"{where}: no answer to a complete request"
        return None
    status = answer.status
    if moto_fault(answer, request, backend):
        return "origin 500 (moto)"
    assert status != 500 and (status < 500 or status in ALLOWED_5XX), \
        f"{where}: {status} {answer.body[:300]!r}"
    if status < 400 or request.method == "HEAD" or not answer.body:
        assert status < 400 or request.method == "HEAD" or not request.valid_http or (status == 400 and \
            answer.headers.get("content-type") == "text/plain; charset=utf-8"), f"{where}: {status} without a body"
        return str(status)
    content_type = answer.headers.get("content-type", "")
    if not content_type.startswith("application/xml"):
        assert not request.valid_http and status == 400, f"{where}: {status} {content_type} {answer.body[:200]!r}"
        return "http-400"
    root = ElementTree.fromstring(answer.body)
    code = root.findtext("Code")
    assert root.tag == "Error" and code, f"{where}: {answer.body[:300]!r}"
    assert code != "InternalError", f"{where}: {answer.body[:500]!r}"
    if code in CODES:
        assert CODES[code][0] == status, f"{where}: {code} answered {status}"
    return code


# ---- the test --------------------------------------------------------------------------------------


def worker_warnings(worker: Worker, start: int) -> str:
    lines = worker.log_path.read_bytes()[start:].decode("utf-8", "replace").splitlines()
    return "\n".join(line[:400] for line in lines if " WARNING s3cache" in line or "ERROR" in line)[-4000:]


def test_fuzzed_requests_never_break_the_worker(worker: Worker, s3: Any) -> None:
    # A fixed seed by default, so CI is repeatable; S3CACHE_FUZZ_SEED=random draws a new one (printed to replay).
    chosen = os.environ.get("S3CACHE_FUZZ_SEED") or str(DEFAULT_SEED)
    seed = random.SystemRandom().randrange(2**32) if chosen == "random" else int(chosen)
    print(f"fuzz seed {seed} (replay: S3CACHE_FUZZ_SEED={seed})")
    rng = random.Random(seed)
    bucket = f"fz-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    canary_key, canary = f"canary-{uuid.uuid4().hex}", os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key=canary_key, Body=canary)
    keys = ["a.txt", "dir/b.bin", "sp ace", "uni-\u00e9", "big.bin", "q?x", "%41", "tilde~"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(rng.randint(0, 5000)))
    log_start = worker.log_path.stat().st_size

    tally: dict[str, int] = {}
    for number in range(REQUESTS):
        request = base_request(rng, bucket, keys, canary_key)
        mutate(rng, request, bucket, keys, canary_key)
        where = f"seed={seed} request #{number}: {request.summary()}"
        try:
            answer = send(worker.port, request)
            code = check(answer, request, where, worker.backend)
        except (AssertionError, OSError) as error:  # with what the worker said about it
            raise AssertionError(f"{where}: {error}\nworker log:\n{worker_warnings(worker, log_start)}") from error
        tally[code or "no answer"] = tally.get(code or "no answer", 0) + 1
    print("answers:", dict(sorted(tally.items(), key=lambda item: -item[1])))

    assert worker.proc is not None and worker.proc.poll() is None, f"seed={seed}: the worker died"
    assert httpx.get(f"{worker.url}/_s3cache/healthz", timeout=10).json() == {"status": "ok"}
    assert s3.get_object(Bucket=bucket, Key=canary_key)["Body"].read() == canary, f"seed={seed}: canary changed"
    log = worker.log_path.read_bytes()[log_start:].decode("utf-8", "replace")
    for sign in ("unhandled error", "Exception in ASGI application", "Traceback"):
        assert sign not in log, f"seed={seed}: the worker logged {sign!r}:\n{log[log.find(sign) - 200:][:3000]}"
    assert sum(tally.values()) == REQUESTS
