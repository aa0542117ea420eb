"""Item 7, a peer on the same machine in the same run: panva's `jose` (npm) in a minimal Node
HTTP server (`peer/server.mjs`), doing what the broker does to an agent token.

Compared, per core (each side one process; HTTP sides pinned to core 1 with wrk on core 0):
- in process: verifying the broker's own agent token (same bytes, same key, same checks: typ,
  alg allow-list, kid, iss, aud, required claims, times) and issuing one like it;
- over HTTP: jose's `POST /verify` (verification only) against the broker's cache-hit
  exchange (verification + revocation round trip to Redis + cached credentials), both with
  the bearer token set by the same wrk script.
oidc-provider was not used: its token endpoints need a client registry, grants and an
adapter, so most of what it would measure is not JWT issue/verify.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.bench.report import Report, Row
from tests.bench.world import World, pinned, stop_process, write_lines
from tests.bench.wrk import Wrk
from tests.harness.services import free_port, wait_for

PEER = Path(__file__).resolve().parent / "peer"


class PeerMissing(RuntimeError):
    pass


def install() -> str:
    """node, with the peer's packages installed from its lock file (npm ci)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise PeerMissing(
            "node and npm are needed for the peer benchmark: `sudo apt-get install nodejs npm` "
            "(Node 20 or newer), or skip it with --skip peer"
        )
    if not (PEER / "node_modules" / "jose").is_dir():
        print("  installing the peer's npm packages (npm ci in tests/bench/peer)", flush=True)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER, check=True
        )
    return node


def _inputs(world: World) -> tuple[Path, str, Path, Path]:
    ring = world.key_ring()
    kid = ring.signer.kid
    pem = next(world.keys_dir.glob(f"{kid}.active.pem"))
    template = {
        k: v for k, v in world.agent_claims.items() if k not in ("iat", "nbf", "exp", "jti")
    }
    template_file = world.root / "peer-template.json"
    template_file.write_text(json.dumps(template))
    token_file = write_lines(world.root / "peer-token.txt", [world.agent_token])
    return pem, kid, template_file, token_file


def run(
    world: World, report: Report, seconds: float, broker: dict[str, Any] | None
) -> dict[str, Any]:
    node = install()
    pem, kid, template, token = _inputs(world)
    micro_cmd = [node, "micro.mjs", str(pem), kid, world.issuer, str(token), str(template)]
    micro = subprocess.run(
        pinned([*micro_cmd, str(max(1.0, seconds / 2))], "1"),
        cwd=PEER,
        capture_output=True,
        text=True,
        check=True,
    )
    inproc = json.loads(micro.stdout.strip().splitlines()[-1])
    out: dict[str, Any] = {"in_process": inproc}
    port = free_port()
    server = subprocess.Popen(
        pinned([node, "server.mjs", str(port), str(pem), kid, world.issuer, str(template)], "1"),
        cwd=PEER,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{url}/healthz"), timeout=20, what="peer server")
        wrk = Wrk(world.root, cpus="0")
        wrk.run(f"{url}/verify", method="POST", tokens=token, connections=16, seconds=1)
        for name in ("verify", "issue", "healthz"):
            result = wrk.run(
                f"{url}/{name}",
                method="POST" if name != "healthz" else "GET",
                tokens=token,
                connections=16,
                seconds=seconds,
            )
            if result.errors:
                raise RuntimeError(f"peer /{name}: {result.errors} errors")
            out[f"http_{name}"] = result.as_dict()
        # Token + proof, as a bound exchange verifies them (jose keeps no jti: no refusals).
        proofs = world.proofs(world.root / "peer-proofs.txt", 20_000, f"{url}/verify-bound")
        bound = wrk.run(
            f"{url}/verify-bound", method="POST", tokens=proofs, connections=16, seconds=seconds
        )
        if bound.errors:
            raise RuntimeError(f"peer /verify-bound: {bound.errors} errors")
        out["http_verify_bound"] = bound.as_dict()
    finally:
        stop_process(server)
    _rows(report, out, broker)
    return out


def _get(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as answer:
        return bool(answer.status == 200)


def _rows(report: Report, out: dict[str, Any], broker: dict[str, Any] | None) -> None:
    inproc = out["in_process"]
    limits = (broker or {}).get("limits", {})
    ours_verify = limits.get("broker_verify_per_s")
    ours_mint = limits.get("broker_mint_per_s")
    report.add(
        Row(
            "peer",
            f"jose verify, in process, 1 core ({inproc['node']})",
            inproc["verify"]["per_s"],
            "op/s",
        )
    )
    if ours_verify:
        report.add(
            Row(
                "peer",
                "broker tokens.verify, in process, 1 core",
                ours_verify,
                "op/s",
                inproc["verify"]["per_s"],
                "jose verify, in process",
            )
        )
    report.add(
        Row("peer", "jose issue (SignJWT), in process, 1 core", inproc["issue"]["per_s"], "op/s")
    )
    if ours_mint:
        report.add(
            Row(
                "peer",
                "broker tokens.mint, in process, 1 core",
                ours_mint,
                "op/s",
                inproc["issue"]["per_s"],
                "jose issue, in process",
            )
        )
    for name in ("verify", "issue", "healthz"):
        run = out[f"http_{name}"]
        report.add(
            Row(
                "peer",
                f"jose HTTP /{name}, 1 core (p99 {run['p99_ms']:.2f} ms)",
                run["rps"],
                "req/s",
            )
        )
    run = out["http_verify_bound"]
    report.add(
        Row(
            "peer",
            f"jose HTTP /verify-bound (token + DPoP proof), 1 core (p99 {run['p99_ms']:.2f} ms)",
            run["rps"],
            "req/s",
        )
    )
    bound = (broker or {}).get("bound_1w_pinned")
    if bound:
        report.add(
            Row(
                "peer",
                "broker bound exchange (proof + cached token + Redis), 1 core",
                bound,
                "req/s",
                run["rps"],
                "jose HTTP /verify-bound",
            )
        )
    hit = (broker or {}).get("hit_1w_pinned")
    if hit:
        report.add(
            Row(
                "peer",
                "broker exchange (verify+revocation+cache), 1 core",
                hit,
                "req/s",
                out["http_verify"]["rps"],
                "jose HTTP /verify",
            )
        )
