"""The ``s3cache`` command line: ``serve`` runs one worker (no arguments: the embedded default)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import uvicorn

from conf.settings import REVEAL_SECRETS, ConfigError, Settings, load_settings
from proxy import logs
from proxy.app import SETTINGS_ENV, build_app
from proxy.cli import check, free, load, policy, sidecar, status
from proxy.cli.protocol import S3Protocol, connection_limits
from proxy.cli.tls import TlsListener
from proxy.stack import listen_url

log = logging.getLogger("s3cache")


class Command(Protocol):
    """A subcommand other than serve: it adds its own arguments and runs on them, returning the exit code."""

    def add_parser(self, commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...
    def run(self, args: argparse.Namespace) -> int: ...


COMMANDS: dict[str, Command] = {"sidecar": sidecar, "load": load, "free": free, "check": check, "status": status,
                               "policy": policy}

# flag -> (section, field): the CLI layer of the settings, above file and environment.
SERVE_FLAGS: dict[str, tuple[str, str]] = {
    "host": ("server", "host"),
    "port": ("server", "port"),
    "processes": ("server", "processes"),
    "region": ("server", "region"),
    "data": ("storage", "data_dir"),
    "cache_dir": ("cache", "cache_dir"),
    "cache_capacity": ("cache", "capacity_bytes"),
    "block_size": ("cache", "block_size_bytes"),
    "log_level": ("log", "level"),
    "origin": ("origin", "endpoint"),
    "origin_region": ("origin", "region"),
    "origin_access_key": ("origin", "access_key_id"),
    "origin_secret_key": ("origin", "secret_access_key"),
    "origin_client": ("origin", "http_client"),
    "metadata_ttl": ("cache", "metadata_ttl_s"),
    "eviction": ("cache", "eviction"),
    "redis": ("cluster", "redis_url"),
    "advertise_url": ("cluster", "advertise_url"),
    "worker_id": ("cluster", "worker_id"),
    "data_path": ("cluster", "data_path"),
    "cluster_secret": ("cluster", "secret"),
    "cluster_secret_file": ("cluster", "secret_file"),
    "cluster_previous_secret_file": ("cluster", "previous_secret_file"),
}
SECRET_ON_COMMAND_LINE = ("--cluster-secret puts the cluster secret where every user of this host can read it "
                          "(ps, /proc/PID/cmdline): use --cluster-secret-file or S3CACHE_CLUSTER_SECRET")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3cache",
        description="A distributed S3 cache: one ordinary S3 endpoint in front of a directory or an S3 origin.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve", help="run a worker (no arguments: 127.0.0.1:29998 over ./data, no Redis)",
        description="Run one s3cache worker. Settings come from --config, then S3CACHE_<SECTION>_<FIELD> "
                    "environment variables, then these flags.")
    serve.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file (see conf/example.toml)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port to listen on (default 29998; 0 picks a free port)")
    serve.add_argument("--processes", type=int, help="uvicorn worker processes (default 1; one per core at most)")
    serve.add_argument("--region", help="region reported to clients (default us-east-1)")
    serve.add_argument("--data", metavar="DIR",
                       help="directory under storage: each sub-directory is a bucket (default ./data)")
    serve.add_argument("--cache-dir", metavar="DIR", help="local directory for cached blocks")
    serve.add_argument("--cache-capacity", metavar="SIZE", help="cache capacity, bytes or with K/M/G suffix")
    serve.add_argument("--block-size", metavar="SIZE", help="cache block size, bytes or with K/M/G suffix")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="log level (default info)")
    origin = serve.add_argument_group("S3 origin (cache every bucket of an S3 endpoint)")
    origin.add_argument("--origin", metavar="URL", help="S3 origin endpoint, e.g. http://minio:9000; credentials "
                        "from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unless given below")
    origin.add_argument("--origin-region", metavar="REGION", help="region to sign origin requests for (us-east-1)")
    origin.add_argument("--origin-access-key", metavar="KEY", help="origin access key id")
    origin.add_argument("--origin-secret-key", metavar="SECRET", help="origin secret access key")
    origin.add_argument("--origin-client", choices=["aiohttp", "httpx"],
                        help="HTTP library of the origin client (default aiohttp: less CPU per request)")
    origin.add_argument("--metadata-ttl", type=float, metavar="SECONDS",
                        help="how long origin metadata is trusted (default 60)")
    origin.add_argument("--eviction", choices=["lru", "s3fifo"], help="block eviction policy (default s3fifo)")
    origin.add_argument("--mount", action="append", metavar="NAME=URI[,ro]",
                        help="serve bucket NAME from s3://bucket/prefix or file:///dir; ',ro' makes it read-only; "
                             "repeatable")
    cluster = serve.add_argument_group("cluster (workers sharing a Redis placement map)")
    cluster.add_argument("--redis", metavar="URL", help="join the cluster whose placement map is in this Redis, "
                         "e.g. redis://10.0.0.5:6379/0")
    cluster.add_argument("--cluster-secret", metavar="SECRET", help="shared secret of the cluster (required with "
                         "--redis): authenticates peer requests and redirect tokens. Visible to every user of the "
                         "host: prefer --cluster-secret-file or S3CACHE_CLUSTER_SECRET")
    cluster.add_argument("--cluster-secret-file", metavar="FILE", type=Path,
                         help="file holding the cluster secret (surrounding whitespace dropped)")
    cluster.add_argument("--cluster-previous-secret-file", metavar="FILE", type=Path,
                         help="during a rotation: file holding the secret being replaced, still accepted from peers "
                              "and in redirect tokens (new ones are signed with the current secret)")
    cluster.add_argument("--advertise-url", metavar="URL", help="URL peers and redirected clients use to reach "
                         "this worker (default http://HOST:PORT)")
    cluster.add_argument("--worker-id", metavar="ID", help="stable worker id (default the advertised URL)")
    cluster.add_argument("--data-path", choices=["proxy", "redirect", "auto"],
                         help="reads of blocks held elsewhere: proxy them (default), redirect the client (307), "
                              "or auto (redirect only clients that follow 307)")
    for command in COMMANDS.values():
        command.add_parser(commands)
    return parser


def parse_mount(text: str) -> dict[str, str]:
    """``NAME=URI[,ro|,rw|,wo]`` -> a [[mounts]] table."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ConfigError(f"--mount {text!r}: expected NAME=URI[,ro]")
    uri, _, flag = rest.partition(",")
    modes = {"": "read-write", "rw": "read-write", "ro": "read-only", "wo": "write-only"}
    if flag not in modes:
        raise ConfigError(f"--mount {text!r}: the mode after ',' is ro, rw or wo")
    return {"bucket": name, "uri": uri, "mode": modes[flag]}


def settings_from_args(args: argparse.Namespace, env: dict[str, str]) -> Settings:
    overrides: dict[str, Any] = {}
    for flag, (section, field) in SERVE_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.setdefault(section, {})[field] = value
    if getattr(args, "mount", None):
        overrides["mounts"] = [parse_mount(text) for text in args.mount]
    return load_settings(args.config, env, overrides)


def _banner(settings: Settings) -> str:
    endpoint = listen_url(settings)
    source = settings.origin.endpoint or settings.storage.data_dir.resolve()
    plain = f" (and {listen_url(settings, tls=False)})" if settings.server.tls else ""
    return (f"s3cache serving {source} at {endpoint}{plain}\n"
            f"  try: AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any aws --endpoint-url {endpoint} s3 ls")


def serve(settings: Settings, warnings: Sequence[str] = ()) -> None:
    logs.configure(settings.log.level, settings.log.format)
    for warning in warnings:
        log.warning(warning)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per origin request is noise; s3cache logs its own
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    common: dict[str, Any] = {
        "loop": "uvloop", "lifespan": "on", "access_log": False, "server_header": False,
        # httptools, bounded (S3Protocol); a partial of a module-level class pickles to `--processes` children
        "http": functools.partial(S3Protocol, limits=connection_limits(settings)),
        "proxy_headers": False,  # no X-Forwarded-* rewriting: SigV4 needs the Host the client used
        "timeout_keep_alive": settings.server.keepalive_timeout_s, "log_level": settings.log.level,
        "limit_concurrency": settings.server.max_connections,  # beyond it uvicorn answers 503
        "timeout_graceful_shutdown": settings.server.drain_s or None,
    }
    if settings.server.processes > 1:
        # the children need the secrets themselves (masked in any other dump); this variable is never logged
        os.environ[SETTINGS_ENV] = json.dumps(settings.model_dump(mode="json", context={REVEAL_SECRETS: True}))
        print(_banner(settings), flush=True)
        uvicorn.run("proxy.app:app_from_env", factory=True, host=settings.server.host, port=settings.server.port,
                    workers=settings.server.processes, **common)
        return
    server = settings.server
    sock = _bound(server.host, server.port)
    tls = None
    if server.tls_cert_file is not None and server.tls_key_file is not None:
        tls = TlsListener(_bound(server.host, server.tls_port), server.tls_cert_file, server.tls_key_file)
    # port 0: peers and redirects need the ports actually bound
    bound = {"port": sock.getsockname()[1], "tls_port": tls.sock.getsockname()[1] if tls else server.tls_port}
    settings = settings.model_copy(update={"server": server.model_copy(update=bound)})
    config = uvicorn.Config(build_app(settings), **common)
    print(_banner(settings), flush=True)
    _Server(config, settings.server.drain_delay_s, tls).run(sockets=[sock])


def _bound(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, plus a drain on SIGTERM/SIGINT: readyz answers 503 at once and a cluster worker leaves the
    placement; after server.drain_delay_s the listener closes and requests in flight get server.drain_s to finish
    (uvicorn's graceful shutdown). A second signal exits at once, as in uvicorn."""

    def __init__(self, config: uvicorn.Config, drain_delay_s: float, tls: TlsListener | None = None) -> None:
        super().__init__(config)
        self.drain_delay_s = drain_delay_s
        self.tls = tls

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's startup, plus the HTTPS listener on its own socket and TLS context (uvicorn gives every
        socket of one server the same TLS setting, none here), its certificate reloaded on SIGHUP."""
        await super().startup(sockets=sockets)
        if self.tls is None or self.should_exit:
            return
        config, loop = self.config, asyncio.get_running_loop()

        def create_protocol() -> asyncio.Protocol:
            return config.http_protocol_class(config=config, server_state=self.server_state,  # type: ignore[call-arg]
                                              app_state=self.lifespan.state, _loop=loop)

        self.servers.append(await loop.create_server(create_protocol, sock=self.tls.sock, ssl=self.tls.context,
                                                     backlog=config.backlog))
        loop.add_signal_handler(signal.SIGHUP, self.tls.reload)

    def handle_exit(self, sig: int, frame: Any) -> None:
        app: Any = self.config.app  # the S3App this process serves
        if self.should_exit or getattr(app, "draining", False):
            super().handle_exit(sig, frame)
            return
        app.draining = True
        leave = getattr(getattr(app, "stack", None), "registry", None)
        if leave is not None:
            task = asyncio.get_event_loop().create_task(leave.leave())
            _leaving.add(task)
            task.add_done_callback(_leaving.discard)
        log.info("draining: readyz answers 503; closing the listener in %.1fs, requests in flight may take %.1fs",
                 self.drain_delay_s, self.config.timeout_graceful_shutdown or 0.0)
        if self.drain_delay_s > 0:
            asyncio.get_event_loop().call_later(self.drain_delay_s, super().handle_exit, sig, frame)
        else:
            super().handle_exit(sig, frame)


_leaving: set[asyncio.Task[None]] = set()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = COMMANDS.get(args.command)
    if command is not None:
        return command.run(args)
    try:
        settings = settings_from_args(args, dict(os.environ))
        serve(settings, [SECRET_ON_COMMAND_LINE] if getattr(args, "cluster_secret", None) is not None else [])
    except ConfigError as error:
        print(f"s3cache: invalid configuration: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
