"""`python -m tests.docker` (`make docker-test`): the container smoke test.

    uv run python -m tests.docker                  # local base images (no registry needed)
    uv run python -m tests.docker --images public  # python:3.11-slim, redis, caddy, moto pulled
    uv run python -m tests.docker --keep           # leave the stack up to look at it

Builds the broker image, checks what the docs claim of it (non-root, healthcheck, no secret,
no compiler, pip or dev dependency), starts docker/compose.yaml with the `dev` profile as
its own compose project (two broker replicas, Caddy, Redis with AOF, the moto emulator),
and through Caddy checks /readyz, the OIDC discovery and JWKS, then plays a person with the
`vouch` CLI on this host: invite (in a broker container), enroll, login, two delegations,
exchange, revoke. Then it stops one replica (Caddy must route around it), starts it again,
restarts Redis (`compose restart`), and checks that the revocation and the delegations
survived. It removes the stack, volumes included, at the end, whatever happened.

`--images local` (the default) first runs docker/local-images.sh: base images from Debian
packages and the wheelhouse from uv.lock, for a host that reaches no image registry and no
PyPI from inside containers (needs root and debootstrap). `--images public` is for a laptop
with Docker Desktop. Needs a Docker engine and `docker compose` or `docker-compose` (1.29).
Not part of `make test`. Prints `docker: N passed, N failed` last.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.docker.checks import Checks, SmokeFailed, environ, run, tail
from tests.docker.compose import Stack
from tests.docker.image import ROOT, check_image

ADMIN = "admin@example.com"  # the admin of policies/examples/org.toml
MODEL = "us.claude-haiku-4-5"
IMAGE = "vouch-broker:0.1.0"
CADDY_ROOT = "/data/caddy/pki/authorities/local/root.crt"
REVOKED = 5  # the CLI's exit code for denied or revoked


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Edge:
    """HTTPS through Caddy on this host, trusting only Caddy's local CA."""

    base: str
    context: ssl.SSLContext

    def get(self, path: str, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.base + path, headers={"User-Agent": "vouch-smoke"})
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.context) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        if status != 200:
            raise SmokeFailed(f"GET {path}: {status} {body[:200]!r}")
        return json.loads(body)

    def ready(self, times: int, timeout: float = 90) -> None:
        """`times` answers 200 from /readyz in a row (every replica in the rotation).

        Raises:
            SmokeFailed: not within `timeout`.
        """
        deadline, streak, last = time.monotonic() + timeout, 0, ""
        while streak < times:
            if time.monotonic() > deadline:
                raise SmokeFailed(f"/readyz through Caddy not 200 {times}x in a row: {last}")
            try:
                status, _, body = self.get("/readyz", timeout=5)
                last = f"{status} {body[:120]!r}"
                streak = streak + 1 if status == 200 else 0
            except (OSError, ssl.SSLError) as exc:
                last, streak = repr(exc), 0
            if streak < times:
                time.sleep(0.5)


@dataclass
class Person:
    """The `vouch` CLI of this workspace, with a software key, as the admin."""

    env: dict[str, str]
    work: Path

    def vouch(self, *args: str, expect: int = 0) -> str:
        print(f"   $ vouch {' '.join(args)}", flush=True)
        done = run(["vouch", *args], env=self.env, timeout=90, check=False)
        shown = "\n".join(
            line for line in done.stderr.splitlines() if line.strip() and not line.startswith("!!")
        )
        if done.returncode != expect:
            raise SmokeFailed(
                f"`vouch {' '.join(args)}` exited {done.returncode}, expected {expect}:\n"
                f"{tail(shown)}"
            )
        return done.stdout

    def delegate(self, agent: str) -> tuple[Path, str]:
        out = self.work / f"{agent}.jwt"
        record = json.loads(
            self.vouch(
                "--json",
                "delegate",
                "--agent",
                agent,
                "--model",
                MODEL,
                "--ttl",
                "1h",
                "--purpose",
                "docker smoke test",
                "--out",
                str(out),
            )
        )
        return out, str(record["delegation"]["id"] if "delegation" in record else record["id"])

    def exchange(self, token: Path, expect: int = 0) -> dict[str, Any]:
        out = self.vouch("credential", "aws", "--token-file", str(token), expect=expect)
        return json.loads(out) if expect == 0 else {}

    def delegations(self) -> dict[str, dict[str, Any]]:
        # --all: revoked ones too (the plain list shows the active ones only).
        listing = json.loads(self.vouch("--json", "delegate", "list", "--all"))
        return {d["id"]: d for d in listing["delegations"]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.docker", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--images",
        choices=("local", "public"),
        default=os.environ.get("VOUCH_SMOKE_IMAGES", "local"),
        help="base images built here from Debian packages (default), or pulled",
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    return parser.parse_args(argv)


def image_env(images: str) -> dict[str, str]:
    if images == "public":
        return {}
    out = run([str(ROOT / "docker/local-images.sh"), "env"]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def prepare(work: Path, images: str, checks: Checks) -> tuple[Stack, dict[str, str], int]:
    """Keys, the compose variables and the brokers' env file in `work`; nothing on docker/."""
    keys = work / "keys"
    run(["vouch-broker", "keys", "generate", "--dir", str(keys)])
    # The brokers' user must own the 0600 key files: the image's 10001 when we are root (so
    # the non-root check means something), else our own uid.
    uid, gid = (10001, 10001) if os.getuid() == 0 else (os.getuid(), os.getgid())
    for path in (keys, *keys.iterdir()):
        os.chown(path, uid, gid)
    https_port, http_port = free_port(), free_port()
    password = secrets.token_urlsafe(24)
    variables = {
        "COMPOSE_PROJECT_NAME": "vouchsmoke",
        "VOUCH_PUBLIC_HOST": "localhost",
        "REDIS_PASSWORD": password,
        "VOUCH_UID": str(uid),
        "VOUCH_GID": str(gid),
        "VOUCH_KEYS_DIR": str(keys),
        "VOUCH_ORG_POLICY": str(ROOT / "policies/examples/org.toml"),
        "VOUCH_ENV_FILE": str(work / "vouch.env"),
        "VOUCH_HTTP_PORT": f"127.0.0.1:{http_port}",
        "VOUCH_HTTPS_PORT": f"127.0.0.1:{https_port}",
        "VOUCH_IMAGE": IMAGE,
        **image_env(images),
    }
    (work / "compose.env").write_text("".join(f"{k}={v}\n" for k, v in variables.items()))
    # The `dev` lines of docker/vouch.env.example, plus the CLI's origin (the published port)
    # and metrics on each replica's own port (the test counts what each served; Caddy still
    # answers 404 for /metrics on the public name, which the test checks too).
    (work / "vouch.env").write_text(
        "VOUCH_AWS_ENDPOINT_URL=http://moto:5000\n"
        "AWS_ACCESS_KEY_ID=testing\n"
        "AWS_SECRET_ACCESS_KEY=testing\n"
        "VOUCH_ALLOW_SOFTWARE_KEYS=true\n"
        "VOUCH_EXPOSE_METRICS=true\n"
        f"VOUCH_ORIGINS=https://localhost:{https_port}\n"
    )
    stack = Stack(
        compose_file=ROOT / "docker/compose.yaml",
        env_file=work / "compose.env",
        project="vouchsmoke",
        env=environ(**variables, DOCKER_BUILDKIT=os.environ.get("DOCKER_BUILDKIT", "0")),
    )
    checks.note("compose", " ".join(stack.command))
    checks.note("Caddy", f"https://localhost:{https_port} (http on {http_port})")
    return stack, variables, https_port


def build(stack: Stack, checks: Checks, images: str) -> None:
    if images == "local":
        with checks.stage("local base images and wheelhouse (docker/local-images.sh)"):
            done = run([str(ROOT / "docker/local-images.sh")], timeout=1800)
            print(tail(done.stderr, 20))
    with checks.stage("build the broker image (compose build broker)"):
        stack.compose("build", "broker", timeout=1800)
    checks.ok(bool(run(["docker", "images", "--quiet", IMAGE]).stdout.strip()), f"built {IMAGE}")


def start(stack: Stack, checks: Checks) -> Edge:
    with checks.stage("start the stack (compose --profile dev up -d)"):
        stack.compose("up", "--detach", timeout=600)
        stack.wait_succeeded("aws-setup", timeout=180)
        checks.ok(True, "aws-setup created the OIDC provider and role in the emulator")
        brokers = stack.wait_healthy("broker", 2, timeout=180)
        checks.equal(len(brokers), 2, "two broker replicas, both healthy (the image's HEALTHCHECK)")
        stack.wait_healthy("redis", 1, timeout=60)
        checks.ok(True, "Redis healthy")
        proxy = stack.containers("proxy")
        checks.equal(len(proxy), 1, "Caddy running")
        root = Path(stack.env["VOUCH_KEYS_DIR"]).parent / "caddy-root.crt"
        deadline = time.monotonic() + 60
        while run(["docker", "cp", f"{proxy[0]}:{CADDY_ROOT}", str(root)], check=False).returncode:
            if time.monotonic() > deadline:
                raise SmokeFailed("Caddy made no local CA")
            time.sleep(1)
        port = stack.env["VOUCH_HTTPS_PORT"].rsplit(":", 1)[1]
        edge = Edge(f"https://localhost:{port}", ssl.create_default_context(cafile=str(root)))
        edge.ready(4)
    return edge


def check_edge(edge: Edge, stack: Stack, checks: Checks) -> None:
    with checks.stage("through Caddy: readiness, OIDC discovery, JWKS"):
        status, headers, body = edge.get("/readyz")
        # The dev profile gives the brokers the emulator's credentials: the AWS cut is on.
        checks.equal(
            (status, json.loads(body)),
            (200, {"status": "ready", "aws_cut": "enabled"}),
            "/readyz is 200 ready, revocations reach AWS",
        )
        checks.ok("Server" not in headers, "Caddy strips the Server header")
        discovery = edge.json("/.well-known/openid-configuration")
        checks.equal(
            discovery["issuer"], "https://localhost", "discovery: issuer is the public URL"
        )
        checks.equal(
            discovery["jwks_uri"], "https://localhost/.well-known/jwks.json", "discovery: jwks_uri"
        )
        jwks = edge.json("/.well-known/jwks.json")
        kids = sorted(k["kid"] for k in jwks["keys"])
        files = sorted(p.name.split(".")[0] for p in Path(stack.env["VOUCH_KEYS_DIR"]).iterdir())
        checks.equal(kids, files, "JWKS publishes the active and the next key of the key directory")
        checks.ok(all("d" not in k for k in jwks["keys"]), "JWKS holds no private key material")
        checks.equal(edge.get("/metrics")[0], 404, "/metrics is not served on the public name")


def story(stack: Stack, person: Person, checks: Checks) -> tuple[Path, str, Path, str]:
    with checks.stage("the CLI on this host: invite, enroll, login, delegate, exchange, revoke"):
        invite = stack.compose("run", "--rm", "-T", "broker", "invite", ADMIN, timeout=120)
        code = invite.stdout.strip().splitlines()[-1]
        print(f"   $ compose run --rm broker invite {ADMIN}   -> a one-time code")
        person.vouch("enroll", "--email", ADMIN, "--code", code)
        checks.ok(True, "enroll with the invite code (software key, through Caddy)")
        person.vouch("login")
        status = json.loads(person.vouch("status", "--json"))
        checks.equal((status["signed_in"], status["email"]), (True, ADMIN), "login: signed in")
        kept, kept_id = person.delegate("smoke-kept")
        gone, gone_id = person.delegate("smoke-revoked")
        checks.ok(kept_id != gone_id, f"two delegations: {kept_id}, {gone_id}")
        creds = person.exchange(gone)
        checks.equal(
            (creds.get("Version"), bool(creds.get("AccessKeyId")), bool(creds.get("SessionToken"))),
            (1, True, True),
            "exchange: credential_process JSON with STS credentials (from the emulator)",
        )
        revoked = json.loads(person.vouch("--json", "delegate", "revoke", gone_id))
        checks.equal(
            revoked.get("aws_sessions"), "cut", "revoke: AWS was told (the role's Deny is written)"
        )
        person.exchange(gone, expect=REVOKED)
        checks.ok(True, "revoke: the next exchange is refused (exit 5)")
        person.exchange(kept)
        checks.ok(True, "the other delegation still exchanges")
        served = api_requests(stack)
        checks.note("API requests per replica", json.dumps(served))
        checks.ok(
            all(n > 0 for n in served.values()), "Caddy spread the requests over both replicas"
        )
    return kept, kept_id, gone, gone_id


def api_requests(stack: Stack) -> dict[str, int]:
    """Requests to /v1/ routes each broker replica answered since it started (its metrics)."""
    return {
        stack.name(c): int(stack.exec(c, ["python", "-c", METRICS]).strip())
        for c in stack.containers("broker")
    }


def survive(
    stack: Stack, edge: Edge, person: Person, checks: Checks, story_out: tuple[Path, str, Path, str]
) -> None:
    kept, kept_id, gone, gone_id = story_out
    with checks.stage("stop one replica: Caddy routes to the other; start it again"):
        first = stack.containers("broker")[0]
        run(["docker", "stop", first], timeout=60)
        edge.ready(4)
        person.exchange(kept)
        person.exchange(gone, expect=REVOKED)
        checks.ok(True, "with one replica down, exchanges and revocation hold through Caddy")
        run(["docker", "start", first], timeout=60)
        stack.wait_healthy("broker", 2, timeout=120)
        checks.ok(True, "the stopped replica is back and healthy")
    with checks.stage("restart Redis (compose restart redis): state from the AOF"):
        redis = stack.containers("redis")[0]
        info = stack.exec(redis, ["redis-cli", "INFO", "persistence"])
        checks.ok("aof_enabled:1" in info, "Redis runs with the append-only file")
        stack.compose("restart", "redis", timeout=120)
        stack.wait_healthy("redis", 1, timeout=60)
        edge.ready(6)
        person.exchange(gone, expect=REVOKED)
        checks.ok(True, "after the restarts the revoked delegation is still refused")
        person.exchange(kept)
        checks.ok(True, "after the restarts the kept delegation still exchanges")
        listed = person.delegations()
        checks.ok({kept_id, gone_id} <= set(listed), "both delegations are still listed")
        checks.equal(
            (bool(listed[gone_id].get("revoked_at")), bool(listed[kept_id].get("revoked_at"))),
            (True, False),
            "the list still marks exactly the revoked one",
        )


# Requests to /v1/ routes this replica answered (its own metrics, inside the container).
METRICS = (
    "import urllib.request as u\n"
    "text = u.urlopen('http://127.0.0.1:8080/metrics', timeout=5).read().decode()\n"
    "print(int(sum(float(l.rsplit(' ', 1)[1]) for l in text.splitlines()"
    " if l.startswith('vouch_http_requests_total{') and 'route=\"/v1/' in l)))"
)


def remove(stack: Stack, checks: Checks) -> None:
    with checks.stage("remove the stack (compose down --volumes)"):
        stack.compose("down", "--volumes", "--remove-orphans", check=False, timeout=180)
        left = run(
            [
                "docker",
                "ps",
                "--all",
                "--quiet",
                "--filter",
                f"label=com.docker.compose.project={stack.project}",
            ],
            check=False,
        ).stdout.split()
        with contextlib.suppress(SmokeFailed):  # counted and printed; the summary follows
            checks.equal(left, [], "no container of the stack is left")


def _terminated(signum: int, _frame: object) -> None:
    """Raises: SmokeFailed, so that a timeout's SIGTERM still removes the stack."""
    raise SmokeFailed(f"terminated by signal {signum} (a time limit?)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    checks = Checks()
    started = time.monotonic()
    for tool in ("docker", "vouch", "vouch-broker", "uv"):
        if not shutil.which(tool):
            print(
                f"docker smoke test: `{tool}` is not on PATH (run it with `uv run`)",
                file=sys.stderr,
            )
            return 2
    if run(["docker", "info"], check=False, timeout=30).returncode != 0:
        print("docker smoke test: no Docker engine answers (start dockerd)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="vouch-docker-"))
    work.chmod(0o755)  # the bind-mounted key directory must be reachable by the daemon
    stack: Stack | None = None
    try:
        stack, variables, port = prepare(work, args.images, checks)
        stack.compose("down", "--volumes", "--remove-orphans", check=False)
        build(stack, checks, args.images)
        with checks.stage("check the image"):
            check_image(checks, IMAGE, [variables["REDIS_PASSWORD"]])
        edge = start(stack, checks)
        check_edge(edge, stack, checks)
        person = Person(
            environ(
                VOUCH_SERVER=f"https://localhost:{port}",
                VOUCH_AUTHENTICATOR=f"soft:{work / 'key.json'}",
                VOUCH_PIN="123456",
                XDG_CONFIG_HOME=str(work / "config"),
                XDG_STATE_HOME=str(work / "state"),
                SSL_CERT_FILE=str(work / "caddy-root.crt"),
            ),
            work,
        )
        survive(stack, edge, person, checks, story(stack, person, checks))
    except SmokeFailed as exc:
        checks.failed = max(checks.failed, 1)
        print(f"\nDOCKER SMOKE TEST FAILED: {exc}", file=sys.stderr)
        if stack is not None:
            print("== last logs of the stack", file=sys.stderr)
            print(stack.logs(), file=sys.stderr)
    finally:
        if stack is not None and not args.keep:
            remove(stack, checks)
        if args.keep:
            print(f"\nkept: the stack (project vouchsmoke) and its files in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        checks.timings["total"] = time.monotonic() - started
        checks.summary()
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
