"""Throwaway Redis: real redis-server processes on free 127.0.0.1 ports, started and stopped by their PIDs.

- RedisServer: one node. It keeps nothing on disk (``--save "" --appendonly no``), so a restart on the same port
  is a Redis that lost everything.
- RedisCluster: a three-master Redis Cluster (``redis-cli --cluster create``).
- SentinelGroup: a master, a replica and three sentinels; killing the master makes a failover.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis

from rig.processes import free_port, stop_process


@dataclass
class RedisServer:
    """A redis-server of our own (never the machine's 6379), restartable on the same port."""

    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.port = self.port or free_port()
        log = open(self.workdir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return self
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig)
        self.proc = None

    def restart(self) -> RedisServer:
        """Stop and start on the same port: every key is gone."""
        self.stop()
        return self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=2)


def _wait_ping(port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 10.0,
               password: str | None = None) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, password=password)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{what} on port {port} did not start") from None
                time.sleep(0.05)
    finally:
        client.close()


def _auth(password: str) -> list[str]:
    """redis-server options requiring password of clients, and giving it to the master (replicas, cluster nodes)."""
    return ["--requirepass", password, "--masterauth", password] if password else []


def _spawn(cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


@dataclass
class RedisCluster:
    """A Redis Cluster of three masters (no replicas): three redis-server processes in cluster mode, each in a
    directory of its own on two free ports (clients, and the cluster bus), joined by `redis-cli --cluster create`.
    Nothing is kept on disk but each node's cluster config file. With a password, every node requires it."""

    workdir: Path
    password: str = ""
    nodes: int = 3
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The seeds, as cluster.redis_url takes them."""
        auth = f"{quote(self.password, safe='')}@" if self.password else ""
        return f"redis+cluster://{auth}" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> RedisCluster:
        try:
            for _ in range(self.nodes):
                port, bus = free_port(), free_port()
                directory = self.workdir / f"cluster-{port}"
                directory.mkdir(parents=True)
                self.ports.append(port)
                self.procs.append(_spawn(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                     "--cluster-port", str(bus), "--cluster-config-file", str(directory / "nodes.conf"),
                     "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no", "--dir", str(directory),
                     "--daemonize", "no", *_auth(self.password)], directory / "redis.log"))
            for port, proc in zip(self.ports, self.procs, strict=True):
                _wait_ping(port, proc, "a cluster node", password=self.password or None)
            done = subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                                   "--cluster-replicas", "0", "--cluster-yes"],
                                  capture_output=True, text=True, timeout=60,
                                  env={**os.environ, "REDISCLI_AUTH": self.password} if self.password else None)
            if done.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create: {done.stdout}{done.stderr}")
            _until(self._ok, 20, "the cluster did not reach cluster_state:ok on every node")
        except BaseException:
            self.stop()
            raise
        return self

    def _ok(self) -> bool:
        for port in self.ports:
            with self.node_client(port) as client:
                info = str(client.execute_command("CLUSTER", "INFO"))
            if "cluster_state:ok" not in info or f"cluster_known_nodes:{self.nodes}" not in info:
                return False
        return True

    def stop(self, sig: int = signal.SIGTERM) -> None:
        for proc in self.procs:
            stop_process(proc, sig)
        self.procs = []

    def client(self) -> redis.RedisCluster:
        """A cluster client (it follows the slots to the node holding each key)."""
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0], decode_responses=True, socket_timeout=2,
                                  password=self.password or None)

    def node_client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=2,
                           password=self.password or None)


@dataclass
class SentinelGroup:
    """Redis under Sentinel: one master, one replica (`--replicaof`), three sentinels (`redis-server sentinel.conf
    --sentinel`) monitoring it as `service` with a quorum of 2, down after 1 s, failover timeout 3 s. Every process
    on its own free 127.0.0.1 port and in its own directory; a failover is made by killing the master by its PID.
    With a password, the master and the replica require it (the sentinels do not: they are given it to monitor)."""

    workdir: Path
    password: str = ""
    service: str = "s3cache"
    servers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)  # port -> redis-server (data)
    sentinels: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)  # port -> sentinel

    @property
    def url(self) -> str:
        """The sentinels and the master's name, as cluster.redis_url takes them."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinels)
        auth = f"{quote(self.password, safe='')}@" if self.password else ""
        return f"redis+sentinel://{auth}{hosts}/{self.service}/0"

    def _server(self, port: int, *extra: str) -> None:
        directory = self.workdir / f"redis-{port}"
        directory.mkdir(parents=True)
        self.servers[port] = _spawn(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(directory), "--daemonize", "no", *_auth(self.password), *extra], directory / "redis.log")
        _wait_ping(port, self.servers[port], "redis-server", password=self.password or None)

    def start(self) -> SentinelGroup:
        try:
            master, replica = free_port(), free_port()
            self._server(master)
            self._server(replica, "--replicaof", "127.0.0.1", str(master))
            _until(lambda: self._replication(replica).get("master_link_status") == "up", 20,
                   "the replica did not sync with the master")
            for _ in range(3):
                port = free_port()
                directory = self.workdir / f"sentinel-{port}"
                directory.mkdir(parents=True)
                conf = directory / "sentinel.conf"  # Sentinel rewrites it as it learns the group
                conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                                f"sentinel monitor {self.service} 127.0.0.1 {master} 2\n"
                                f"sentinel down-after-milliseconds {self.service} 1000\n"
                                f"sentinel failover-timeout {self.service} 3000\n"
                                f"sentinel parallel-syncs {self.service} 1\n"
                                + (f"sentinel auth-pass {self.service} {self.password}\n" if self.password else ""))
                self.sentinels[port] = _spawn(["redis-server", str(conf), "--sentinel"], directory / "sentinel.log")
                _wait_ping(port, self.sentinels[port], "redis-sentinel")
            # A failover needs the sentinels to know each other (they meet through the master) and the replica.
            _until(self._settled, 30, "the sentinels did not all find each other and the replica")
        except BaseException:
            self.stop()
            raise
        return self

    def _replication(self, port: int) -> dict[str, object]:
        with self.node_client(port) as client:
            return dict(client.info("replication"))

    def _settled(self) -> bool:
        for port in self.sentinels:
            with self.sentinel_client(port) as client:
                state = client.sentinel_master(self.service)
            if int(state["num-other-sentinels"]) != len(self.sentinels) - 1 or int(state["num-slaves"]) < 1:
                return False
        return True

    def named_master(self, sentinel_port: int) -> int:
        """The master's port as one sentinel names it."""
        with self.sentinel_client(sentinel_port) as client:
            return int(client.sentinel_get_master_addr_by_name(self.service)[1])

    def master_port(self) -> int:
        """The master's port, as the sentinels (the first that answers) name it now."""
        for port in self.sentinels:
            try:
                return self.named_master(port)
            except (redis.RedisError, TypeError):
                continue
        raise RuntimeError("no sentinel answered")

    def kill_master(self) -> int:
        """SIGKILL the master by its PID (it is not restarted); its port."""
        port = self.master_port()
        stop_process(self.servers.pop(port), signal.SIGKILL)
        return port

    def wait_failover(self, old_port: int, timeout_s: float = 30.0) -> int:
        """Until every sentinel names a new master and that server says it is one; its port."""
        def promoted() -> bool:
            named = {self.named_master(p) for p in self.sentinels}
            if len(named) != 1 or old_port in named:
                return False
            return self._replication(named.pop()).get("role") == "master"
        _until(promoted, timeout_s, f"no replica was promoted after the master on {old_port} went")
        return self.master_port()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        for proc in [*self.sentinels.values(), *self.servers.values()]:
            stop_process(proc, sig)
        self.sentinels, self.servers = {}, {}

    def client(self) -> redis.Redis:
        """The current master."""
        return self.node_client(self.master_port())

    def node_client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=2,
                           password=self.password or None)

    def sentinel_client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=2)
