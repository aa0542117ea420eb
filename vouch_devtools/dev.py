"""`vouch-broker dev`: the whole chain on one machine with embedded defaults.

A redis-server child (AOF on, data under the state directory) unless VOUCH_REDIS_URL is set,
a moto server child as the local AWS (provider and role created by the same code as
`aws-setup --apply`) unless VOUCH_AWS_ENDPOINT_URL is set or --real-aws is given, a
development signing key, the example org policy, and the broker on 127.0.0.1.

The state directory holds a signing key and Redis data (sessions, people, the audit trail),
so it is private: directories 0700, files 0600 (also when an older version left them
readable), and its redis-server listens on loopback only and wants a password generated
once per state directory, kept in `<state>/redis/password` and handed to redis-server in a
0600 config file rather than on its command line, where `ps` would show it.
"""

from __future__ import annotations

import contextlib
import fcntl  # POSIX, as the rest of the dev stack (redis-server)
import importlib.util
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import uvicorn

from broker import aws_setup
from broker.app import create_app
from broker.http_server import stop_on_sigterm
from broker.invites import invite_from_host
from broker.keys import generate_key_dir
from broker.logs import configure
from broker.services import load_policy
from broker.settings import (
    LoadedSettings,
    Settings,
    SettingsError,
    log_deprecations,
    read_settings,
)

USAGE: dict[str, Any] = {"usage_source": "cloudwatch"}
SPEND: dict[str, Any] = {"spend_poll_interval_s": 2.0}
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class DevError(RuntimeError):
    """The dev stack cannot start; the message says what to do."""


@dataclass(frozen=True)
class DevOptions:
    state_dir: Path
    port: int = 8080
    redis_port: int | None = None
    """None: 6380 if free, else any free port."""
    aws_port: int | None = None
    """None: 5001 if free, else any free port."""
    real_aws: bool = False


USUAL_PORTS = {"redis": 6380, "aws": 5001}
LOCK_FILE = "dev.lock"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def any_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Ports:
    redis: int
    aws: int


def choose_ports(opts: DevOptions, *, redis: bool, aws: bool) -> Ports:
    """The stack's ports: the broker's and any given must be free (every clash reported at
    once); Redis's and the emulator's, when not given, are the usual ones if free, else any.

    Raises: DevError naming every taken port and the option that moves it.
    """
    taken, moves = [], []
    wanted = [(opts.port, "the broker", "--port")]
    if redis and opts.redis_port is not None:
        wanted.append((opts.redis_port, "redis-server", "--redis-port"))
    if aws and opts.aws_port is not None:
        wanted.append((opts.aws_port, "the local AWS emulator", "--aws-port"))
    for port, what, flag in wanted:
        if not port_free(port):
            taken.append(f"port {port} for {what} is taken (pass {flag} PORT)")
            moves.append(f"{flag} {any_free_port()}")
    if taken:
        example = " ".join(moves)
        raise DevError(
            f"{'; '.join(taken)}; stop what uses them or choose others, e.g. "
            f'make run ARGS="{example}"'
        )

    def pick(given: int | None, usual: int) -> int:
        if given is not None:
            return given
        return usual if port_free(usual) else any_free_port()

    return Ports(
        pick(opts.redis_port, USUAL_PORTS["redis"]), pick(opts.aws_port, USUAL_PORTS["aws"])
    )


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """Hold the state directory for this stack: a second stack on it would share its Redis
    data (two redis-servers appending to one AOF).

    Raises: DevError when another running stack holds it.
    """
    path = state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            raise DevError(
                f"{state_dir} is in use by another vouch-broker dev (pid {holder}); give this "
                f'stack its own: make run ARGS="--port {any_free_port()} --state-dir '
                f'{state_dir}-2" (or vouch-broker dev --state-dir DIR)'
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def wait_until(
    check: Callable[[], bool], what: str, child: subprocess.Popen[bytes], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise DevError(f"{what} exited at start (code {child.returncode}); see its log")
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.1)
    raise DevError(f"{what} did not start within {timeout:g} s")


def private_dir(path: Path, *, contents: bool = False) -> Path:
    """`path` as a directory only its owner can use (0700); with `contents`, everything
    already in it is tightened too: 0700 directories, 0600 files. Only for directories this
    module owns (its Redis data), never the state directory's own contents, which a user
    may have pointed anywhere."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for entry in [path, *(path.rglob("*") if contents else ())]:
        if not entry.is_symlink():
            entry.chmod(0o700 if entry.is_dir() else 0o600)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a file that is 0600 from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)  # O_CREAT's mode does not apply to a file that already existed


def redis_password(data: Path) -> str:
    """The dev Redis password: generated once per state directory, then reused."""
    path = data / "password"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def start_redis(opts: DevOptions, port: int, children: list[subprocess.Popen[bytes]]) -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise DevError(
            "redis-server is not installed: sudo apt-get install redis-server "
            "(or set VOUCH_REDIS_URL to a Redis you run)"
        )
    data = private_dir((opts.state_dir / "redis").resolve(), contents=True)
    password = redis_password(data)
    config = data / "redis.conf"
    write_private(config, f"requirepass {password}\n")
    children.append(
        subprocess.Popen(  # noqa: S603 - fixed argv: a resolved binary, our own arguments
            [
                binary,
                str(config),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "yes",
                "--dir",
                str(data),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--logfile",
                str(data / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            umask=0o077,  # its AOF, RDB and log files are 0600 too
        )
    )
    wait_until(lambda: not port_free(port), "redis-server", children[-1])
    return f"redis://:{password}@127.0.0.1:{port}/0"


def start_moto(port: int, children: list[subprocess.Popen[bytes]]) -> str:
    if importlib.util.find_spec("moto") is None:  # the child imports it; we only check
        raise DevError(
            "the local AWS emulator needs moto: uv sync (dev group) or "
            "pip install 'moto[server]'; or pass --real-aws"
        )
    children.append(
        subprocess.Popen(  # noqa: S603 - fixed argv: a resolved binary, our own arguments
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: urllib.request.urlopen(f"{url}/moto-api/", timeout=1).status == 200,  # noqa: S310
        "moto server",
        children[-1],
        timeout=60,
    )
    return url


@contextlib.contextmanager
def dev_stack(opts: DevOptions) -> Iterator[dict[str, Any]]:
    """Start the children and yield the settings overrides; stop the children on exit."""
    children: list[subprocess.Popen[bytes]] = []
    overrides: dict[str, Any] = {}
    redis = not os.environ.get("VOUCH_REDIS_URL")
    aws = not os.environ.get("VOUCH_AWS_ENDPOINT_URL") and not opts.real_aws
    ports = choose_ports(opts, redis=redis, aws=aws)
    private_dir(opts.state_dir)
    try:
        with state_lock(opts.state_dir):
            if redis:
                overrides["redis_url"] = start_redis(opts, ports.redis, children)
            if aws:
                os.environ.update({k: os.environ.get(k, v) for k, v in FAKE_AWS.items()})
                overrides["aws"] = {"endpoint_url": start_moto(ports.aws, children)}
            yield overrides
    finally:
        for child in reversed(children):
            child.terminate()
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)
            if child.poll() is None:
                child.kill()


def dev_issuer(opts: DevOptions) -> str:
    """VOUCH_ISSUER, else the broker's own address on this machine."""
    return os.environ.get("VOUCH_ISSUER", f"http://localhost:{opts.port}")


def check_real_aws_issuer(opts: DevOptions) -> None:
    """With --real-aws, AWS STS must fetch the issuer's discovery document and JWKS itself:
    refuse an issuer it cannot reach before anything starts.

    Raises:
        SettingsError: the issuer is not a public https URL without port.
    """
    issuer = dev_issuer(opts)
    parts = urlsplit(issuer)
    host = parts.hostname or ""
    try:
        public = ipaddress.ip_address(host).is_global
    except ValueError:  # a name: only this machine's own names are known to be unreachable
        public = bool(host) and host != "localhost" and not host.endswith(".localhost")
    if parts.scheme == "https" and public and parts.port is None:
        return
    raise SettingsError(
        [
            f"issuer: --real-aws needs an issuer AWS can fetch, not {issuer}: STS reads "
            f"{issuer.rstrip('/')}/.well-known/openid-configuration and the JWKS it names "
            "from the internet, so the issuer must be a public https URL without port. Serve "
            f"this broker there (a tunnel or reverse proxy to 127.0.0.1:{opts.port}), start "
            'with VOUCH_ISSUER=https://YOUR-HOST make run ARGS="--real-aws", then create the '
            "IAM provider and role for it with vouch-broker aws-setup (docs/aws-setup.md)"
        ]
    )


def dev_settings(opts: DevOptions, overrides: dict[str, Any]) -> LoadedSettings:
    """Settings for the dev stack: a local key, software keys allowed, AWS wired if emulated.

    Raises:
        SettingsError, PoliciesError.
    """
    keys = opts.state_dir / "keys"
    if not keys.exists():
        generate_key_dir(keys)
    loaded = read_settings(
        issuer=dev_issuer(opts),
        signing_keys=os.environ.get("VOUCH_SIGNING_KEYS", str(keys)),
        allow_software_keys=True,
        expose_metrics=True,  # a developer's own machine: metrics and the API viewer are handy
        expose_schema=True,
        # The emulator's invocation log group, unless the developer named a source.
        **({} if "aws" not in overrides or "VOUCH_USAGE_SOURCE" in os.environ else USAGE),
        # Budgets enforced within seconds of a record (production polls every 30 s).
        **({} if "VOUCH_SPEND_POLL_INTERVAL_S" in os.environ else SPEND),
        **overrides,
    )
    settings = loaded.settings
    if "aws" in overrides:
        catalog, org = load_policy(settings)
        iam = boto3.client(
            "iam", endpoint_url=settings.aws.endpoint_url, region_name=settings.aws.region
        )
        aws_setup.apply(aws_setup.plan(settings, org, catalog), iam)
        if settings.aws.endpoint_url:
            logs = boto3.client(
                "logs", endpoint_url=settings.aws.endpoint_url, region_name=settings.aws.region
            )
            aws_setup.ensure_invocation_log_group(logs, settings.aws.invocation_log_group)
    return loaded


def run_dev(opts: DevOptions) -> int:
    """Run the stack until Ctrl-C. Raises: DevError, SettingsError."""
    if opts.real_aws:
        check_real_aws_issuer(opts)
    stop_on_sigterm()
    with dev_stack(opts) as overrides:
        settings, deprecations = dev_settings(opts, overrides)
        admin = sorted(load_policy(settings)[1].admins)[0]
        code = invite_from_host(settings.redis_url, admin, ttl_s=settings.invite_ttl_s)
        _banner(settings, admin, code)
        configure(settings.log_level)
        log_deprecations(deprecations)
        uvicorn.run(
            create_app(settings),
            host="127.0.0.1",
            port=opts.port,
            log_config=None,
            access_log=False,
            server_header=False,
        )
    print("vouch dev stack stopped.", file=sys.stderr)
    return 0


def _tool(name: str) -> str:
    """`name` as a command that works as printed in any directory: its absolute path beside
    this Python (the venv's bin, which is not on PATH), else bare."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else name


def _banner(settings: Settings, admin: str, code: str) -> None:
    issuer = settings.issuer
    aws = settings.aws.endpoint_url or (
        "real AWS (your credentials); IAM trusts this issuer once you ran "
        "vouch-broker aws-setup --apply with it (docs/aws-setup.md)"
    )
    vouch, aws_cli = _tool("vouch"), _tool("aws")
    endpoint = f" --endpoint-url {settings.aws.endpoint_url}" if settings.aws.endpoint_url else ""
    print(
        f"""
Vouch broker (development) at {issuer}
  redis: {_without_password(settings.redis_url)}
  aws:   {aws}
  org policy: policies/examples/org.toml (admins: {admin})

Next, in another terminal (software key: for demos only, not hardware; its PIN is 123456):
  export VOUCH_SERVER={issuer} VOUCH_AUTHENTICATOR=soft:$HOME/.vouch-demo-key.json
  {vouch} enroll --email {admin}        (type the invite code: {code})
  {vouch} login
  {vouch} aws-profile{endpoint}        # your own credentials: profile vouch
  {aws_cli} sts get-caller-identity --profile vouch
  {vouch} delegate --agent demo --model us.claude-haiku-4-5 --out agent.jwt
  {vouch} credential aws --token-file agent.jwt
  {vouch} aws-profile agent --token-file agent.jwt{endpoint}
  {aws_cli} sts get-caller-identity --profile agent

In a browser (a real security key; Chromium, Firefox or Safari on this machine):
  {issuer}/enroll?code={code}    register the key with the invite
  {issuer}/signin                sign in, then approve the link an agent prints
                                 (request_delegation logs {issuer}/approve/CODE)
Ctrl-C stops the broker and its redis-server and AWS emulator.
""",
        file=sys.stderr,
        flush=True,
    )


def _without_password(url: str) -> str:
    """A Redis URL fit for a terminal: the password replaced by where to find it."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}:***@{host} (password in <state dir>/redis/password)"
