"""Replicated Redis on loopback: a 3+3 Redis Cluster and a Sentinel-watched master/replica."""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.harness.services import free_port, wait_for


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install redis-server")
    return binary


class Node:
    """One redis-server process with extra config lines."""

    def __init__(
        self, workdir: Path, *extra: str, sentinel: bool = False, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.extra = extra
        self.sentinel = sentinel
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> Node:
        conf = self.workdir / ("sentinel.conf" if self.sentinel else "redis.conf")
        if not conf.exists():  # sentinels rewrite their config: keep it across restarts
            conf.write_text(
                "\n".join(
                    [
                        f"port {self.port}",
                        "bind 127.0.0.1",
                        f"dir {self.workdir}",
                        f"logfile {self.workdir / 'log.txt'}",
                        *self.extra,
                        "",
                    ]
                )
            )
        args = [_redis_server(), str(conf)] + (["--sentinel"] if self.sentinel else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_for(client.ping, what=f"redis node {self.port}")
        client.close()
        return self

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc = None


class LocalCluster:
    """3 masters + 3 replicas with AOF, created with `redis-cli --cluster create`."""

    def __init__(self, workdir: Path) -> None:
        self.nodes = [
            Node(
                workdir / f"n{i}",
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                "cluster-node-timeout 1000",
                "appendonly yes",
                "appendfsync always",
                'save ""',
                port=cluster_port(),
            )
            for i in range(6)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3])

    def start(self) -> LocalCluster:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_for(self.healthy, timeout=30, what="cluster state ok")
        wait_for(self.replicas_in_sync, timeout=30, what="cluster replicas in sync")
        return self

    def replicas_in_sync(self) -> bool:
        linked = 0
        for node in self.nodes:
            client = redis.Redis(port=node.port)
            try:
                info = client.info("replication")
                linked += info.get("role") == "slave" and info.get("master_link_status") == "up"
            finally:
                client.close()
        return linked == 3

    def healthy(self) -> bool:
        client = redis.Redis(port=self.nodes[0].port)
        try:
            return client.cluster("info")["cluster_state"] == "ok"
        finally:
            client.close()

    def master_of(self, key: str) -> Node:
        client = redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port)
        try:
            node = client.get_node_from_key(key)
            return next(n for n in self.nodes if n.port == int(node.port))
        finally:
            client.close()

    def fail_over(self, key: str, timeout: float = 30) -> None:
        """Kill the master that owns `key` and wait until its replica serves the slot."""
        victim = self.master_of(key)
        victim.kill()
        survivors = [n for n in self.nodes if n is not victim]

        def promoted() -> bool:
            client = redis.Redis(port=survivors[0].port)
            try:
                slots = client.cluster("slots")
                owners = {int(s[2][1]) for s in slots}
                info = client.cluster("info")
                return victim.port not in owners and info["cluster_state"] == "ok"
            finally:
                client.close()

        wait_for(promoted, timeout=timeout, what="cluster failover")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class LocalSentinel:
    """A master, one replica and three sentinels watching them as service `vouch`."""

    def __init__(self, workdir: Path) -> None:
        common = ("appendonly yes", "appendfsync always", 'save ""')
        self.master = Node(workdir / "master", *common)
        self.replica = Node(workdir / "replica", *common)
        self.sentinels = [Node(workdir / f"s{i}", sentinel=True) for i in range(3)]

    @property
    def url(self) -> str:
        return (
            "redis+sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels) + "/vouch"
        )

    def start(self) -> LocalSentinel:
        self.master.start()
        self.replica.extra = (*self.replica.extra, f"replicaof 127.0.0.1 {self.master.port}")
        self.replica.start()
        for sentinel in self.sentinels:
            sentinel.extra = (
                f"sentinel monitor vouch 127.0.0.1 {self.master.port} 2",
                "sentinel down-after-milliseconds vouch 1000",
                "sentinel failover-timeout vouch 5000",
            )
            sentinel.start()
        wait_for(lambda: self.master_port() == self.master.port, timeout=30, what="sentinel")
        wait_for(self._replica_in_sync, timeout=30, what="replica sync")
        return self

    def _replica_in_sync(self) -> bool:
        client = redis.Redis(port=self.replica.port)
        try:
            return client.info("replication").get("master_link_status") == "up"
        finally:
            client.close()

    def master_port(self) -> int:
        client = redis.Redis(port=self.sentinels[0].port)
        try:
            return int(client.execute_command("SENTINEL", "get-master-addr-by-name", "vouch")[1])
        finally:
            client.close()

    def fail_over(self, timeout: float = 30) -> None:
        """Kill the master and wait until the sentinels promote the replica."""
        self.master.kill()
        wait_for(
            lambda: self.master_port() == self.replica.port,
            timeout=timeout,
            what="sentinel failover",
        )
        time.sleep(0.2)

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.master]:
            node.stop()
