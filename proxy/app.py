"""Composition root: builds the under storage and the S3 front from settings; the one place clients are made.

Requests under ``/_s3cache/`` (probes, later metrics and peer calls) go to a small Starlette app: no
valid bucket name contains "_", so that prefix can never shadow a bucket. Everything else is S3.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from cache.blocks.reader import Served, served
from cache.cluster.connect import ERRORS as REDIS_ERRORS
from cache.cluster.view import read_view
from cache.s3.errors import S3Error
from cache.s3.names import bucket_name_error
from conf.settings import Settings
from proxy import logs
from proxy.auth import authenticate
from proxy.context import Context, Stack
from proxy.errors import error_response, internal_error
from proxy.http import QUIET_ABORTS, Receive, Request, Response, Scope, Send, StreamAborted, send_response
from proxy.logs import ACCESS_FIELDS
from proxy.metrics import Metrics
from proxy.oidc import groups_of
from proxy.operations import OPERATIONS, resolve
from proxy.peer import PATHS as PEER_PATHS
from proxy.peer import serve_peer
from proxy.policy import authorize
from proxy.policyfile import load_policy
from proxy.redirect import check_token, redirect, take_token
from proxy.stack import advertised_url, build_stack

ADMIN_PREFIX = "/_s3cache/"
PROBES = frozenset({ADMIN_PREFIX + "healthz", ADMIN_PREFIX + "readyz"})  # answered on the HTTP port even HTTPS-only
SETTINGS_ENV = "S3CACHE__SETTINGS_JSON"  # how `serve --processes N` hands settings to worker processes

log = logging.getLogger("s3cache")
access_log = logging.getLogger("s3cache.access")


def _admin_app(ctx: Context, metrics: Metrics, draining: Callable[[], bool]) -> Starlette:
    async def healthz(_: StarletteRequest) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def metrics_endpoint(_: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def status(_: StarletteRequest) -> JSONResponse:
        return JSONResponse(await status_report(ctx, metrics))

    async def readyz(_: StarletteRequest) -> JSONResponse:
        if draining():
            return JSONResponse({"status": "draining"}, status_code=503)
        try:
            await ctx.store.list_buckets()
        except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
            return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready"})

    return Starlette(routes=[
        Route(ADMIN_PREFIX + "healthz", healthz),
        Route(ADMIN_PREFIX + "readyz", readyz),
        Route(ADMIN_PREFIX + "metrics", metrics_endpoint),
        Route(ADMIN_PREFIX + "status", status),
    ])


async def status_report(ctx: Context, metrics: Metrics) -> dict[str, Any]:
    """What `s3cache status` shows: this worker, its cache, and the cluster as Redis records it (read now; with
    Redis unreachable, this worker's last snapshot of the live set and the reason)."""
    stack = ctx.stack
    settings = ctx.settings
    report: dict[str, Any] = {
        "worker": {"url": advertised_url(settings), "origin": settings.origin.endpoint,
                   "data_dir": str(settings.storage.data_dir), "data_path": settings.cluster.data_path,
                   "requests": sum(metrics.requests.values())},
        "cache": stack.blocks.stats() if stack is not None and stack.blocks is not None else None,
        "cluster": None,
    }
    if stack is not None and stack.registry is not None and stack.cluster is not None:
        registry = stack.registry
        report["worker"]["id"] = stack.cluster.worker_id
        cluster: dict[str, Any] = {"redis": registry.url, "redis_up": True, "master": registry.master}
        try:
            cluster.update(await read_view(registry.redis, registry.ns))
        except REDIS_ERRORS as exc:
            cluster.update(redis_up=False, error=f"{type(exc).__name__}: {exc}", block_size_bytes=None,
                           workers=[{**vars(member), "live": True} for member in
                                    sorted(registry.members.values(), key=lambda m: m.id)])
        report["cluster"] = cluster
    return report


def header_section_too_large() -> S3Error:
    return S3Error("RequestHeaderSectionTooLarge")


# Legacy us-east-1 bucket names (before 2018): up to 255 letters of either case, digits, '.', '-' and '_'. An origin
# may still hold such a bucket, so in front of one only names not even these rules allow are refused up front.
_LEGACY_BUCKET_RE = re.compile(r"^[A-Za-z0-9._-]{1,255}$")


@functools.lru_cache(maxsize=4096)
def _bucket_refusal(bucket: str, legacy_ok: bool) -> str | None:
    reason = bucket_name_error(bucket)
    if reason is None or (legacy_ok and bucket not in (".", "..") and _LEGACY_BUCKET_RE.match(bucket)):
        return None
    return reason


def check_header_section(headers: list[tuple[bytes, bytes]], max_bytes: int, max_count: int) -> None:
    """S3 refuses a request whose headers pass 8 KiB (each name and value counted): 400
    RequestHeaderSectionTooLarge, judged before anything reads them."""
    if len(headers) > max_count or sum(len(name) + len(value) for name, value in headers) > max_bytes:
        raise header_section_too_large()


class S3App:
    """The ASGI application of one worker."""

    def __init__(self, ctx: Context, stack: Stack | None = None) -> None:
        self.ctx = ctx
        self.stack = stack
        self.metrics = Metrics(stack)
        if stack is not None and stack.registry is not None:
            stack.registry.stats = self.metrics.heartbeat_stats  # heartbeats carry what `s3cache status` shows
        self.draining = False  # set on SIGTERM: readyz answers 503 while requests in flight finish
        self.admin = _admin_app(ctx, self.metrics, lambda: self.draining)
        self.access = ctx.settings.log.access_log
        self.domains = tuple(ctx.settings.server.domains)  # virtual-hosted-style: the bucket named by the Host
        self.max_header_bytes = ctx.settings.server.max_header_bytes
        self.max_headers = ctx.settings.server.max_headers
        self.mounted = frozenset(ctx.namespace.mounts) if ctx.namespace is not None else frozenset()
        self.legacy_names = ctx.settings.origin.endpoint is not None
        server = ctx.settings.server
        # server.https_only: what a request on the HTTP port gets (probes excepted)
        self.plain_refusal = S3Error("AccessDenied", f"This endpoint is HTTPS only: use https on port "
                                     f"{server.tls_port}") if server.https_only else None
        # admission control: past either bound an S3 request is refused at once (503 SlowDown), never queued
        self.inflight = 0  # S3 requests in S3App.s3 right now
        self.max_inflight = ctx.settings.server.max_inflight_requests
        self.max_waiting_fills = ctx.settings.cache.max_waiting_fills
        self.reader = stack.reader if stack is not None else None
        logging.getLogger("uvicorn.error").addFilter(QUIET_ABORTS)  # aborted streams: send_response logs them

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.plain_refusal is not None and scope.get("scheme") == "http" and scope["path"] not in PROBES:
                response = error_response(self.plain_refusal, scope["path"], "0", scope["method"] == "HEAD")
                response.headers["connection"] = "close"  # its body, if any, is left unread
                await send_response(send, response, "0", scope["method"] == "HEAD", scope["path"])
            elif scope["path"] in PEER_PATHS:
                await serve_peer(self.ctx, scope, receive, send)
            elif scope["path"].startswith(ADMIN_PREFIX):
                await self.admin(scope, receive, send)  # type: ignore[arg-type]
            else:
                await self.s3(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for start in self.stack.starters if self.stack else []:
                        await start()
                except ValueError as error:  # a setting the cluster does not accept: stop with one clear line
                    log.error("s3cache: invalid configuration: %s", error)
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for close in self.stack.closers if self.stack else []:
                    await close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def s3(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        served.set(record := Served())  # this request's task (and the tasks it starts) counts what served its blocks
        head = scope["method"] == "HEAD"
        request: Request | None = None
        self.inflight += 1  # counted down in the finally below (or where a cancelled request leaves)
        try:
            self._admit()
            check_header_section(scope["headers"], self.max_header_bytes, self.max_headers)
            request = Request(scope, receive, self.domains)
            if request.bucket and request.bucket not in self.mounted:
                # A name no bucket can have is refused before anything reads the body: S3 judges the name first
                # (PUT /..?tagging with a body is InvalidBucketName, not MalformedXML).
                reason = _bucket_refusal(request.bucket, self.legacy_names)
                if reason is not None:
                    raise S3Error("InvalidBucketName", reason, extra={"BucketName": request.bucket})
            token = take_token(request)
            if token is None:
                caller = authenticate(self.ctx.settings.auth, request.method,
                                      (scope.get("raw_path") or b"").decode("latin-1") or scope["path"],
                                      scope.get("query_string", b"").decode("latin-1"), request.headers,
                                      request.query)
                request.user, request.chain = caller.user, caller.chain
                request.groups = groups_of(request.user)
            operation = resolve(request)
            request.operation = operation.name
            if token is not None:  # judged against the operation it would admit: only the read it was made for
                check_token(self.ctx, request, operation, token)  # the worker that made it judged the read
            else:
                authorize(self.ctx.policy, request, operation)
            response = await redirect(self.ctx, request, operation, token is not None) or \
                await operation.handler(self.ctx, request)
        except S3Error as error:
            response = self._error(error, scope, request, head)
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            response = self._error(internal_error(), scope, request, head)
        except BaseException:  # cancelled mid-request: nothing goes out, and it is no longer in flight
            self.inflight -= 1
            raise
        if (request is None or not request.body_requested) and \
                any(name == b"expect" for name, _ in scope["headers"]):
            # A final answer before "100 Continue": the client may or may not send the body now, so the
            # connection's framing is unknown and it must not be reused (RFC 9110 10.1.1).
            response.headers["connection"] = "close"
        request_id = request.request_id if request is not None else "0"
        status = response.status
        try:
            await send_response(send, response, request_id, head, scope["path"])
        except StreamAborted as aborted:  # logged; raised on so the server cuts the connection
            status = aborted.error.status
            raise
        except OSError as error:
            log.info("client went away during %s: %s", scope["path"], error)
        finally:
            self.inflight -= 1
            size = 0 if head else response.size
            self.metrics.observe(request.operation if request else "-", status, size, time.perf_counter() - started)
            if self.access:
                self._log(request, scope, status, size, started, record)

    def _admit(self) -> None:
        """Refuse a request while the worker is saturated, before anything of it is read: more S3 requests in
        flight than server.max_inflight_requests (this one counted), or more origin fills waiting for a slot than
        cache.max_waiting_fills. 503 SlowDown with Retry-After: 1, which the SDKs back off and retry."""
        if self.max_inflight and self.inflight > self.max_inflight:
            reason = "inflight"
        elif self.max_waiting_fills and self.reader is not None and self.reader.waiting_fills > self.max_waiting_fills:
            reason = "waiting_fills"
        else:
            return
        self.metrics.refused[reason] += 1
        raise S3Error("SlowDown", headers={"retry-after": "1"})

    def _error(self, error: S3Error, scope: Scope, request: Request | None, head: bool) -> Response:
        resource = scope["path"]
        return error_response(error, resource, request.request_id if request else "0", head)

    def _log(self, request: Request | None, scope: Scope, status: int, size: int, started: float,
             record: Served) -> None:
        """One access-log line: <user> <operation> <bucket> <key> <status> <bytes> <latency>ms <request id> <cache>
        <served by> in text (a request that never became one: - - - and its path); the same fields as keys in JSON."""
        elapsed_ms = (time.perf_counter() - started) * 1000
        if request is None:
            user, operation, bucket, key, request_id = "-", "-", "-", scope["path"], "0"
        else:
            user, operation, bucket, key = request.user or "anonymous", request.operation, request.bucket or "-", \
                request.key
            request_id = request.request_id
        fields = {"user": user, "operation": operation, "bucket": bucket, "key": key, "status": status,
                  "bytes": size, "cache": record.cache, "served_by": record.by, "latency_ms": round(elapsed_ms, 2),
                  "request_id": request_id}
        access_log.info("%s %s %s %r %d %d %.2fms %s %s %s", user, operation, bucket, key, status, size, elapsed_ms,
                        request_id, record.cache, record.by, extra={ACCESS_FIELDS: fields})


def build_app(settings: Settings) -> S3App:
    policy = load_policy(settings, OPERATIONS)
    stack = build_stack(settings)
    return S3App(Context(store=stack.store, settings=settings, namespace=stack.namespace, stack=stack,
                         policy=policy), stack)


def app_from_env() -> S3App:
    """uvicorn factory for multi-process serving: settings arrive as JSON in the environment."""
    raw: dict[str, Any] = json.loads(os.environ[SETTINGS_ENV])
    settings = Settings.model_validate(raw)
    logs.configure(settings.log.level, settings.log.format)  # a spawned process: its logging starts empty
    return build_app(settings)
