"""What every benchmark runs against: a dedicated redis-server, a zero-latency STS, signing
keys, a bench org policy, broker processes (`vouch-broker serve`) and a person with a key.

Nothing here is shared with the test suite's services: the benchmark starts its own, on free
loopback ports, and stops them when it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from vouch_delegate import AgentKey

from broker.invites import Invites
from broker.keys import KeyRing, generate_key_dir, load_key_ring
from broker.settings import EXAMPLE_POLICY
from broker.store import connect
from broker.tokens import AGENT_TYP, mint
from tests.harness.people import Human
from tests.harness.services import RedisServer, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "bench@example.com"
MODEL = "us.claude-haiku-4-5"


def bench_policy(directory: Path) -> Path:
    """The example org policy with room for many live delegations (ceremony benchmarks)."""
    text = EXAMPLE_POLICY.read_text().replace(
        "max_active_delegations = 10", "max_active_delegations = 10000"
    )
    path = directory / "org.toml"
    path.write_text(text)
    return path


class FakeSts:
    """`python -m tests.bench.fake_sts` as a child process."""

    def __init__(self, cpus: str | None = None) -> None:
        self.port = free_port()
        self.cpus = cpus
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeSts:
        cmd = [sys.executable, "-m", "tests.bench.fake_sts", str(self.port)]
        self.proc = subprocess.Popen(pinned(cmd, self.cpus), cwd=ROOT)
        wait_for(lambda: self.calls() >= 0, what="fake STS")
        return self

    def calls(self) -> int:
        with urllib.request.urlopen(f"{self.url}/calls", timeout=2) as answer:
            return int(answer.read())

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    """`cmd` under `taskset -c cpus` when cpus is given."""
    return ["taskset", "-c", cpus, *cmd] if cpus else cmd


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Broker:
    """`vouch-broker serve --workers N` (optionally pinned to CPUs) as a separate process."""

    world: World
    workers: int = 1
    cpus: str | None = None
    server: str = "uvicorn"
    tree: Path | None = None  # run the broker from another source tree (a baseline)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.world.port}"

    def start(self) -> Broker:
        cmd = [sys.executable, "-m", "broker.cli", "serve", "--port", str(self.world.port)]
        cmd += ["--workers", str(self.workers)]
        if self.server == "granian":  # the same app factory under granian (not a dependency)
            cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory"]
            cmd += ["--loop", "uvloop", "--no-ws", "--log-level", "warning"]
            cmd += ["--host", "127.0.0.1", "--port", str(self.world.port)]
            cmd += ["--workers", str(self.workers), "broker.cli:app_from_env"]
        log = (self.world.root / f"broker-{self.workers}w.log").open("ab")
        env = self.world.env()
        if self.tree is not None:
            env["PYTHONPATH"] = str(self.tree)
        self.proc = subprocess.Popen(
            pinned(cmd, self.cpus), env=env, stdout=log, stderr=log, cwd=self.tree or ROOT
        )
        log.close()
        wait_for(self._ready, timeout=60, what="broker")
        # Every worker must have started (each answers /healthz once it has).
        wait_for(lambda: len(self.worker_pids()) >= self.workers, timeout=60, what="workers")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"broker exited: see {self.world.root}/broker-*.log")
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the server itself with one worker."""
        if self.proc is None:
            return []
        root = self.proc.pid
        tree = descendants(root)
        if self.workers == 1 and self.server == "uvicorn":
            return [root]
        return [p for p in tree if _is_worker(p)]

    def rss_mb(self) -> list[float]:
        return [rss_mb(pid) for pid in self.worker_pids()]

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _is_worker(pid: int) -> bool:
    line = cmdline(pid)
    return ("multiprocessing" in line and "spawn_main" in line) or "granian" in line.lower()


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return sorted(out)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def busy_seconds() -> float:
    """CPU time spent by the whole machine (all processes, all cores) since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class World:
    """Services, keys, settings and tokens shared by the benchmarks of one run."""

    root: Path
    port: int = field(default_factory=free_port)
    redis: RedisServer | None = None
    sts: FakeSts | None = None
    agent_token: str = ""
    agent_claims: dict[str, Any] = field(default_factory=dict)
    bound_token: str = ""
    """An agent token bound to `agent_key` (DPoP): each exchange needs a fresh proof."""
    agent_key: AgentKey | None = None

    @property
    def issuer(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def redis_url(self) -> str:
        assert self.redis is not None
        return self.redis.url

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    def start(self) -> World:
        self.root.mkdir(parents=True, exist_ok=True)
        generate_key_dir(self.keys_dir)
        self.policy = bench_policy(self.root)
        self.redis = RedisServer(self.root / "redis").start()
        self.sts = FakeSts().start()
        return self

    def service_pids(self) -> list[int]:
        """Redis and the fake STS: the run's own helpers, not "other load"."""
        procs = [self.redis.proc if self.redis else None, self.sts.proc if self.sts else None]
        return [p.pid for p in procs if p is not None]

    def stop(self) -> None:
        if self.sts is not None:
            self.sts.stop()
        if self.redis is not None:
            self.redis.stop()

    def env(self, **extra: str) -> dict[str, str]:
        assert self.sts is not None
        values = {
            "VOUCH_ISSUER": self.issuer,
            "VOUCH_REDIS_URL": self.redis_url,
            "VOUCH_SIGNING_KEYS": str(self.keys_dir),
            "VOUCH_POLICY_FILE": str(self.policy),
            "VOUCH_ALLOW_SOFTWARE_KEYS": "true",
            "VOUCH_AWS_ENDPOINT_URL": self.sts.url,
            "VOUCH_LOG_LEVEL": "WARNING",
            # The ceremony benchmarks sign in far more often than a person would.
            "VOUCH_RATE_LOGIN_PER_MIN": "100000000",
            **extra,
        }
        clean = {k: v for k, v in os.environ.items() if not k.startswith("VOUCH_")}
        return {**clean, **values}

    def broker(self, workers: int = 1, cpus: str | None = None, server: str = "uvicorn") -> Broker:
        return Broker(self, workers=workers, cpus=cpus, server=server)

    def key_ring(self) -> KeyRing:
        return load_key_ring(self.keys_dir)

    def human(self, broker: Broker, email: str = EMAIL) -> Human:
        key_file = self.root / f"{email}.key.json"
        return Human(broker.url, self.issuer, email, key_file)

    def enroll(self, broker: Broker, email: str = EMAIL) -> Human:
        """A person enrolled with a fresh software key and signed in."""
        human = self.human(broker, email)
        human.enroll(self.invite(email))
        human.login()
        return human

    def invite(self, email: str) -> str:
        async def create() -> str:
            redis = connect(self.redis_url, timeout_s=2)
            try:
                return await Invites(redis, ttl_s=3600).create(email)
            finally:
                await redis.aclose()

        return asyncio.run(create())

    def first_delegation(self, broker: Broker) -> str:
        """A real agent token: enroll, sign in, approve a delegation with a key tap."""
        human = self.enroll(broker)
        answer = human.delegate("bench-agent", [MODEL], ttl_s=8 * 3600)
        self.agent_token = str(answer.token)
        self.agent_claims = jwt.decode(self.agent_token, options={"verify_signature": False})
        self.agent_key = AgentKey.generate()
        bound = human.delegate(
            "bench-bound", [MODEL], ttl_s=8 * 3600, bind_key=self.agent_key.thumbprint
        )
        self.bound_token = str(bound.token)
        return self.agent_token

    def proofs(self, path: Path, count: int, url: str) -> Path:
        """`count` lines of "bound token<TAB>fresh DPoP proof" for wrk, one per request."""
        assert self.agent_key is not None
        key, token = self.agent_key, self.bound_token
        return write_lines(
            path, [f"{token}\t{key.proof('POST', url, token)}" for _ in range(count)]
        )

    def agent_tokens(self, count: int) -> list[str]:
        """`count` agent tokens like the real one, each its own delegation and agent.

        They are re-signed with the broker's active key (as `delegations/complete` would)
        so a benchmark can have many delegations without as many key taps.
        """
        ring, base, now = self.key_ring(), self.agent_claims, int(time.time())
        tokens = []
        for i in range(count):
            name = f"bench-{i}"
            claims = {
                **base,
                "sub": f"agent.{name}.{EMAIL}",
                "dlg": "dlg_" + secrets.token_urlsafe(12),  # the broker's own id format
                "jti": secrets.token_urlsafe(16),
                "iat": now,
                "nbf": now,
                "exp": now + 8 * 3600,
            }
            tokens.append(mint(claims, typ=AGENT_TYP, keys=ring))
        return tokens


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
