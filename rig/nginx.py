"""nginx running the shipped load-balancer config, a real process on a free 127.0.0.1 port, stopped by its PID.

It runs ``deploy/nginx/s3cache.conf`` itself, with only its upstream ``server`` lines and its ``listen`` port
substituted, so what runs is the configuration that ships.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rig.processes import ROOT, free_port, stop_process, wait_http

SHIPPED_NGINX_CONF = ROOT / "deploy" / "nginx" / "s3cache.conf"


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open within {timeout_s}s")


def render_nginx_conf(upstreams: list[str], port: int, shipped: Path = SHIPPED_NGINX_CONF) -> str:
    """The shipped server/upstream config with our workers as upstream servers and our listen port."""
    text = shipped.read_text()
    server_line = re.compile(r"^([ \t]*)#?[ \t]*server[ \t]+[^\s;{]+;.*\n", re.MULTILINE)
    matches = list(server_line.finditer(text))
    if not matches:
        raise ValueError(f"{shipped}: no upstream server lines to substitute")
    indent = matches[0].group(1)
    lines = "".join(f"{indent}server {upstream};\n" for upstream in upstreams)
    text = text[:matches[0].start()] + lines + server_line.sub("", text[matches[0].start():])
    text, listens = re.subn(r"^([ \t]*)listen[ \t]+[^;]+;", rf"\g<1>listen 127.0.0.1:{port};", text,
                            flags=re.MULTILINE)
    if listens != 1:
        raise ValueError(f"{shipped}: expected one listen line, found {listens}")
    return text


def start_nginx(w: Path, http_conf: str) -> subprocess.Popen[bytes]:
    """nginx in the foreground (one worker process) with http_conf inside its http block; its files live in w,
    which its unprivileged workers must be able to reach."""
    (w / "nginx.conf").write_text(f"""\
worker_processes 1;
daemon off;
pid {w}/nginx.pid;
error_log {w}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {w}/access.log;
    client_body_temp_path {w}/client_body;
    proxy_temp_path {w}/proxy_temp;
    fastcgi_temp_path {w}/fastcgi_temp;
    uwsgi_temp_path {w}/uwsgi_temp;
    scgi_temp_path {w}/scgi_temp;
    {http_conf}
}}
""")
    (w / "nginx.conf").chmod(0o644)
    log = open(w / "stderr.log", "ab")
    proc = subprocess.Popen(["nginx", "-c", str(w / "nginx.conf"), "-p", str(w), "-e", str(w / "error.log")],
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


@dataclass
class Nginx:
    """nginx in the foreground (one worker process) with the shipped s3cache.conf in its http block."""

    upstreams: list[str]  # "127.0.0.1:PORT" of each s3cache worker
    port: int = 0
    workdir: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    _owned_dir: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        self.port = self.port or free_port()
        if self.workdir is None:  # outside pytest's 0700 tmp tree: nginx workers run unprivileged
            self.workdir = Path(tempfile.mkdtemp(prefix="s3cache-nginx-"))
            self._owned_dir = True
        self.workdir.chmod(0o755)
        w = self.workdir
        (w / "s3cache.conf").write_text(render_nginx_conf(self.upstreams, self.port))
        (w / "s3cache.conf").chmod(0o644)
        self.proc = start_nginx(w, f"include {w}/s3cache.conf;")
        _wait_port(self.port, self.proc)
        wait_http(self.url + "/_s3cache/healthz", proc=self.proc)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
        if self._owned_dir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._owned_dir = False

    def access_log(self) -> str:
        path = self.workdir / "access.log" if self.workdir else None
        return path.read_text(errors="replace") if path is not None and path.exists() else ""
