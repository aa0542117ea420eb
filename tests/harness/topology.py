"""Replicated Redis on loopback: a Redis Cluster and a Sentinel-watched primary with replicas,
whose nodes can be paused (SIGSTOP), resumed, killed (SIGKILL) and restarted."""

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


DURABLE = ("appendonly yes", "appendfsync always", 'save ""')
"""What every node runs unless a test says otherwise: the AOF, fsynced before each reply."""


def _client(port: int, timeout: float = 0.5) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=timeout, socket_connect_timeout=timeout)


def attached_replicas(info: dict[str, object], count: int) -> bool:
    """INFO replication of a primary shows `count` replicas online and at most 1 s behind
    (replicas acknowledge once a second, so offsets rarely match under writes)."""
    replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    return len(replicas) == count and all(
        r["state"] == "online" and int(r["lag"]) <= 1 for r in replicas
    )


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
        self.paused = False
        workdir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"Node({self.workdir.name}:{self.port})"

    @property
    def running(self) -> bool:
        return self.proc is not None

    def start(self) -> Node:
        conf = self.workdir / ("sentinel.conf" if self.sentinel else "redis.conf")
        if not conf.exists():  # Redis and Sentinel rewrite their config: keep it across restarts
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
        try:
            wait_for(client.ping, what=f"redis node {self.port}")
        finally:
            client.close()
        return self

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a stall or partition)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False

    def kill(self) -> None:
        if self.proc is not None:
            self.resume()
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.resume()
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def info(self, section: str) -> dict[str, object]:
        client = _client(self.port)
        try:
            return dict(client.info(section))
        finally:
            client.close()


class LocalCluster:
    """`masters` primaries with `replicas` replicas each, AOF on, created with
    `redis-cli --cluster create` (node timeout 1 s)."""

    def __init__(self, workdir: Path, *, masters: int = 3, replicas: int = 1) -> None:
        self.replicas = replicas
        self.nodes = [
            Node(
                workdir / f"n{i}",
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                "cluster-node-timeout 1000",
                *DURABLE,
                port=cluster_port(),
            )
            for i in range(masters * (1 + replicas))
        ]
        self.masters = masters

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
                str(self.replicas),
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
        return linked == self.masters * self.replicas

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

    def owners(self) -> list[Node]:
        """The nodes that serve slots, as a running, unpaused node sees it."""
        for node in self.nodes:
            if not node.running or node.paused:
                continue
            client = _client(node.port)
            try:
                ports = {int(s[2][1]) for s in client.cluster("slots")}
            except redis.RedisError:
                continue
            finally:
                client.close()
            return [n for n in self.nodes if n.port in ports]
        raise RuntimeError("no cluster node answers")

    def fail_over(self, key: str, timeout: float = 30) -> None:
        """Kill the master that owns `key` and wait until its replica serves the slot."""
        victim = self.master_of(key)
        victim.kill()
        self.wait_promoted(victim, timeout)

    def wait_promoted(self, victim: Node, timeout: float = 30) -> None:
        """Until another node serves `victim`'s slots and the cluster says ok."""
        survivors = [n for n in self.nodes if n is not victim and n.running and not n.paused]

        def promoted() -> bool:
            client = _client(survivors[0].port)
            try:
                slots = client.cluster("slots")
                owners = {int(s[2][1]) for s in slots}
                info = client.cluster("info")
                return victim.port not in owners and info["cluster_state"] == "ok"
            finally:
                client.close()

        wait_for(promoted, timeout=timeout, what="cluster failover")

    def healed(self) -> bool:
        """Every node runs, agrees the cluster is ok, no node is flagged failing, and every
        primary has all its replicas attached and caught up."""
        if any(not n.running or n.paused for n in self.nodes):
            return False
        masters = 0
        for node in self.nodes:
            client = _client(node.port)
            try:
                if client.cluster("info")["cluster_state"] != "ok":
                    return False
                if "fail" in client.execute_command("CLUSTER", "NODES").decode():
                    return False
                info = client.info("replication")
            finally:
                client.close()
            if info["role"] == "master" and int(info["connected_slaves"]) > 0:
                masters += 1
                if not attached_replicas(info, self.replicas):
                    return False
        return masters == self.masters

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class LocalSentinel:
    """A primary, `replicas` replicas and three sentinels watching them as service `vouch`
    (down-after 1 s). `durable=False` runs the nodes without persistence."""

    def __init__(
        self,
        workdir: Path,
        *,
        replicas: int = 1,
        down_after_ms: int = 1000,
        durable: bool = True,
    ) -> None:
        common = DURABLE if durable else ("appendonly no", 'save ""')
        self.master = Node(workdir / "master", *common)
        self.replicas = [Node(workdir / f"replica{i}", *common) for i in range(replicas)]
        self.replica = self.replicas[0]
        self.down_after_ms = down_after_ms
        self.sentinels = [Node(workdir / f"s{i}", sentinel=True) for i in range(3)]

    @property
    def nodes(self) -> list[Node]:
        """Every data node (the first primary first), whatever its role now."""
        return [self.master, *self.replicas]

    @property
    def url(self) -> str:
        return (
            "redis+sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels) + "/vouch"
        )

    def start(self) -> LocalSentinel:
        self.master.start()
        for replica in self.replicas:
            replica.extra = (*replica.extra, f"replicaof 127.0.0.1 {self.master.port}")
            replica.start()
        for sentinel in self.sentinels:
            sentinel.extra = (
                f"sentinel monitor vouch 127.0.0.1 {self.master.port} 2",
                f"sentinel down-after-milliseconds vouch {self.down_after_ms}",
                "sentinel failover-timeout vouch 5000",
            )
            sentinel.start()
        wait_for(lambda: self.master_port() == self.master.port, timeout=30, what="sentinel")
        wait_for(self.healed, timeout=30, what="replica sync")
        return self

    def _replica_in_sync(self) -> bool:
        client = redis.Redis(port=self.replica.port)
        try:
            return client.info("replication").get("master_link_status") == "up"
        finally:
            client.close()

    def master_port(self, sentinel: int = 0) -> int:
        client = _client(self.sentinels[sentinel].port)
        try:
            return int(client.execute_command("SENTINEL", "get-master-addr-by-name", "vouch")[1])
        finally:
            client.close()

    def primary(self) -> Node:
        """The node the first sentinel names."""
        port = self.master_port()
        return next(n for n in self.nodes if n.port == port)

    def fail_over(self, timeout: float = 30) -> None:
        """Kill the master and wait until the sentinels promote a replica."""
        victim = self.primary()
        victim.kill()
        self.wait_promoted(victim, timeout)
        time.sleep(0.2)

    def wait_promoted(self, victim: Node, timeout: float = 30) -> None:
        """Until every sentinel names another node than `victim`."""
        wait_for(
            lambda: all(self.master_port(i) != victim.port for i in range(3)),
            timeout=timeout,
            what="sentinel failover",
        )

    def healed(self) -> bool:
        """Every node runs; every sentinel names the same primary, which has every other node
        attached as a caught-up replica, and knows all of them."""
        if any(not n.running or n.paused for n in self.nodes):
            return False
        ports = {self.master_port(i) for i in range(3)}
        if len(ports) != 1:
            return False
        primary = next(n for n in self.nodes if n.port in ports)
        info = primary.info("replication")
        if info["role"] != "master" or not attached_replicas(info, len(self.replicas)):
            return False
        for i in range(3):
            client = _client(self.sentinels[i].port)
            try:
                known = client.sentinel_slaves("vouch")
            finally:
                client.close()
            if len(known) != len(self.replicas) or any(r["flags"] != "slave" for r in known):
                return False
        return True

    def stop(self) -> None:
        for node in [*self.sentinels, *self.replicas, self.master]:
            node.stop()
