"""`vouch-broker`: serve, manage signing keys, invite people, check org policies.

Exit codes (the `vouch` table): 0 ok, 1 other failure, 4 a dependency (Redis, AWS)
unreachable or unavailable, 5 AWS refused, 6 bad arguments, settings, policy or input.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from broker.errors import InvalidRequest, StoreUnavailable
from broker.keys import (
    KID,
    SigningKeyError,
    generate_key_dir,
    kids_in_dir,
    read_key_dir,
    replace_key_dir,
    revoke_key_files,
    rotate_key_dir,
)
from broker.settings import (
    LoadedSettings,
    Settings,
    SettingsError,
    load_settings,
    log_deprecations,
    read_settings,
)
from policies.errors import PoliciesError
from policies.usage import GROUPINGS

if TYPE_CHECKING:
    import uvicorn

EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_DENIED, EXIT_CONFIG = 1, 4, 5, 6
EXIT_CODES = """exit codes: 0 ok, 1 failed, 4 Redis or AWS unreachable or unavailable,
5 AWS refused, 6 bad arguments, settings, policy or input"""
EPILOG = f"""examples:
  vouch-broker dev                       broker, redis-server and an AWS emulator on this
                                         machine, for development (what `make run` starts)
  vouch-broker policy check /etc/vouch/org.toml
  vouch-broker keys generate --dir /etc/vouch/keys
  vouch-broker aws-setup                 print the IAM OIDC provider and role; --apply
                                         creates them
  vouch-broker --config /etc/vouch/broker.toml serve --host 0.0.0.0 --workers 2
  vouch-broker invite alice@example.com  a one-time enrollment code (or: vouch admin invite)
  vouch-broker usage --from s3://logs/bedrock --since 7d --by agent
                                         tokens and cost from Bedrock's invocation logs

Settings come from --config FILE (or $VOUCH_CONFIG) and VOUCH_* variables:
docs/configuration.md. Running it in production: docs/operating.md.

{EXIT_CODES}"""
NO_AWS_CREDENTIALS = (
    "vouch-broker aws-setup --apply: no AWS credentials found: set AWS_PROFILE (or "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) for an identity that may manage IAM, "
    "or run without --apply and create what it prints"
)
NO_DEVTOOLS = (
    "vouch-broker {command}: development tooling, not part of this installation; "
    "run it from a source checkout of vouch (`make {make}`)"
)


def _read(args: argparse.Namespace) -> LoadedSettings:
    return read_settings(config_file=Path(args.config) if args.config else None)


def _settings(args: argparse.Namespace) -> Settings:
    return _read(args).settings


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from broker.http_server import ServeConfig, stop_on_sigterm

    # Fail fast, before forking workers, with every problem; workers read the settings again
    # but only this process reports deprecated spellings, once.
    settings, deprecations = _read(args)
    from broker.services import load_policy

    load_policy(settings)  # here, so a bad policy is one line, not a traceback per worker
    from broker.usage import load_prices

    load_prices(settings)
    if args.config:
        os.environ["VOUCH_CONFIG"] = str(Path(args.config).resolve())
    from broker.logs import configure

    configure(settings.log_level)
    log_deprecations(deprecations)
    from broker.replication import check_at_start

    refused = check_at_start(settings)
    if refused:
        print(f"vouch-broker serve: {refused}", file=sys.stderr)
        return EXIT_CONFIG
    config = ServeConfig(
        "broker.cli:app_from_env",
        header_timeout_s=settings.http_header_timeout_s,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        loop="uvloop",
        # httptools with a deadline for each request's head (uvicorn has none of its own)
        http="broker.http_server:HeaderTimeoutProtocol",
        server_header=False,
    )
    stop_on_sigterm()
    if args.workers == 1:
        return _serve(config, uvicorn.Server(config))
    with _shared_metrics():
        if hasattr(socket, "SO_REUSEPORT"):
            return _serve_workers(config)
        return _serve(config, uvicorn.Server(config))


@contextmanager
def _shared_metrics() -> Iterator[None]:
    """One set of metrics for all workers (`broker.metrics`): a directory of this server's
    own, made empty at start and removed at the end; or the operator's
    PROMETHEUS_MULTIPROC_DIR, emptied of an earlier run's figures."""
    from broker.metrics import SHARED_DIR_ENV, clear_shared_dir

    given = os.environ.get(SHARED_DIR_ENV)
    try:
        directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="vouch-metrics-"))
        clear_shared_dir(directory)
    except OSError as exc:
        raise SettingsError(
            [
                f"{SHARED_DIR_ENV}: the workers' metrics need a writable directory "
                f"({exc.strerror or exc}: {exc.filename or given}); set {SHARED_DIR_ENV} "
                "(or TMPDIR) to one"
            ]
        ) from None
    os.environ[SHARED_DIR_ENV] = str(directory)  # the workers inherit it
    try:
        yield
    finally:
        if not given:
            del os.environ[SHARED_DIR_ENV]
            shutil.rmtree(directory, ignore_errors=True)


def _serve(config: uvicorn.Config, server: uvicorn.Server) -> int:
    """What `uvicorn.run` does with a Config it did not build: one process, or N sharing
    one socket where SO_REUSEPORT is missing."""
    from uvicorn.supervisors import Multiprocess

    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    return 0 if server.started or config.workers > 1 else 3  # uvicorn's STARTUP_FAILURE


class _WorkerListener(socket.socket):
    """An address each worker binds for itself, in one SO_REUSEPORT group.

    uvicorn's workers share the socket their parent bound, and whichever worker wakes first
    accepts every pending connection: with keep-alive clients (a proxy's pool, a load
    generator) one of two workers served everything (measured: 100% / 0% of their CPU).
    Pickled into a worker (spawn), this becomes that worker's own socket, and the kernel
    spreads new connections over the workers.
    """

    def __init__(self, host: str, port: int) -> None:
        super().__init__(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.address = (host, port)

    def __reduce__(self) -> tuple[object, tuple[socket.AddressFamily, tuple[str, int]]]:
        return (_bind_reuseport, (self.family, self.address))


def _bind_reuseport(family: socket.AddressFamily, address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


def _serve_workers(config: uvicorn.Config) -> int:
    from uvicorn.supervisors import Multiprocess

    listener = _WorkerListener(config.host, config.port)
    try:  # fail here, once, if the address is taken (the probe leaves no socket behind)
        _bind_reuseport(listener.family, listener.address).close()
    except OSError as exc:
        print(f"vouch-broker: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    try:
        Multiprocess(config, sockets=[listener]).run()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    return 0


def app_from_env() -> object:
    """The app for each uvicorn worker, configured from VOUCH_* / VOUCH_CONFIG."""
    from broker.app import create_app
    from broker.logs import configure

    settings = load_settings()
    configure(settings.log_level)
    app = create_app(settings)
    # Everything built at start (the app, boto3's service models, policies) lives as long as
    # the process: freezing it keeps the collector from re-scanning it, which otherwise
    # shows up as ~80 ms pauses in the exchange's tail latency.
    gc.collect()
    gc.freeze()
    return app


COMPROMISE_NEXT = """\
Every token those keys signed is refused now, on every replica, and no replica publishes them.
Next (docs/operating.md, "Signing key compromise"):
  - put the new key files on every replica's key directory (each re-reads it within
    key_refresh_s; a replica whose active key is revoked signs nothing until then);
  - in AWS, revoke the role's older sessions: sessions issued with a stolen key live on;
  - tell people to sign in again and re-approve their agents' delegations."""


def cmd_keys(args: argparse.Namespace) -> int:
    if args.keys_command in {"revoke", "replace-all"}:
        return _revoke_keys(args)
    directory = Path(args.dir or _settings(args).signing_keys or "")
    if not str(directory):
        raise SigningKeyError("no key directory: pass --dir or set VOUCH_SIGNING_KEYS")
    if args.keys_command == "generate":
        generate_key_dir(directory)
    elif args.keys_command == "rotate":
        rotate_key_dir(directory, keep_retired_s=args.keep_retired)
    for key in read_key_dir(directory):
        retired = (
            f" (retired {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(key.retired_at))})"
            if key.retired_at
            else ""
        )
        print(f"{key.kid}  {key.state}{retired}")
    return 0


def _revoke_keys(args: argparse.Namespace) -> int:
    """`keys revoke KID...` / `keys replace-all`: Redis first (every replica refuses the keys
    from then on), then the local key directory (stolen files out, fresh keys in).

    Raises:
        SigningKeyError: a malformed kid, or replace-all without a key directory.
        StoreUnavailable: Redis did not record it (nothing was changed).
    """
    from broker.signing_keys import revoke_from_host

    settings = _settings(args)
    found = args.dir or (None if settings.kms_key_id else settings.signing_keys)
    directory = Path(found) if found else None
    if args.keys_command == "replace-all":
        if directory is None:
            raise SigningKeyError(
                "replace-all needs a key directory (--dir or VOUCH_SIGNING_KEYS); with a KMS "
                "key, revoke its kid and switch VOUCH_KMS_KEY_ID (docs/operating.md)"
            )
        # A file not named by a kid never verified anything: deleted, not recorded.
        kids = [kid for kid in kids_in_dir(directory) if KID.fullmatch(kid)]
    else:
        kids = sorted(set(args.kids))
        bad = [kid for kid in kids if not KID.fullmatch(kid)]
        if bad:
            raise SigningKeyError(f"not a key id (43 base64url characters): {', '.join(bad)}")
    revoke_from_host(
        settings.redis_url,
        kids,
        actor=f"vouch-broker keys {args.keys_command}",
        replicas=settings.revocation_replicas,
        wait_ms=settings.revocation_wait_ms,
        audit_max_len=settings.audit_max_len,
    )
    for kid in kids:
        print(f"{kid}  revoked")
    if directory is not None:
        done = (
            replace_key_dir(directory)
            if args.keys_command == "replace-all"
            else revoke_key_files(directory, set(kids))
        )
        for kid, what in done.items():
            print(f"{kid}  {what} ({directory})")
    print(COMPROMISE_NEXT)
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    from broker.identity import person_email
    from broker.invites import invite_from_host

    settings = _settings(args)
    email = person_email(args.email)
    code = invite_from_host(settings.redis_url, email, ttl_s=settings.invite_ttl_s)
    hours = settings.invite_ttl_s / 3600
    print(f"One-time invite for {email}, valid {hours:g} h. Give them the code (below)")
    print("privately; they run this and type it at the prompt (or use --code-file FILE):")
    print(f"  vouch enroll --server {settings.issuer} --email {email}")
    print(code)
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from broker.services import load_policy

    refused = _not_a_policy_file(Path(args.file))
    if refused:
        print(f"vouch-broker policy check: {refused}", file=sys.stderr)
        return EXIT_CONFIG
    settings = load_settings(policy_file=args.file)
    _, org = load_policy(settings)
    print(
        f"{args.file}: ok ({len(org.rules)} rules, {len(org.allowed_models)} models;"
        f" own use: {len(org.use_rules)} rules, {len(org.use_models)} models)"
    )
    binding = sum(r.limits.require_key_binding for r in org.rules)
    print(
        f"key binding (DPoP): required by {binding} of {len(org.rules)} rules"
        if binding
        else "key binding (DPoP): optional (no rule requires it)"
    )
    return 0


def _not_a_policy_file(path: Path) -> str | None:
    """Why `path` cannot be an org policy file, in words that say what to pass; None if it
    may be one (its content is checked next)."""
    if path.is_dir():
        found = sorted(path.glob("*.toml"))
        example = path / "org.toml" if path / "org.toml" in found or not found else found[0]
        hint = f" ({', '.join(p.name for p in found)} there)" if found else ""
        return (
            f"{path} is a directory: pass the org policy's TOML file{hint}, "
            f"e.g. vouch-broker policy check {example}"
        )
    if not path.exists():
        return f"no such file: {path} (pass the org policy's TOML file)"
    return None


def _no_devtools(exc: ModuleNotFoundError, command: str, make: str) -> int:
    """The one line `dev` and `demo` print where vouch_devtools is absent (an installed wheel).

    Raises:
        ModuleNotFoundError: exc, when something other than vouch_devtools is missing.
    """
    if exc.name != "vouch_devtools":
        raise exc
    print(NO_DEVTOOLS.format(command=command, make=make), file=sys.stderr)
    return 1


def cmd_dev(args: argparse.Namespace) -> int:
    try:  # development tooling: in a source checkout only, never in the wheel
        from vouch_devtools.dev import DevError, DevOptions, run_dev
    except ModuleNotFoundError as exc:
        return _no_devtools(exc, "dev", "run")

    opts = DevOptions(
        Path(args.state_dir), args.port, args.redis_port, args.aws_port, args.real_aws
    )
    try:
        return run_dev(opts)
    except DevError as exc:
        print(f"vouch-broker dev: {exc}", file=sys.stderr)
        return 1


def cmd_demo(args: argparse.Namespace) -> int:
    try:  # development tooling: in a source checkout only, never in the wheel
        from vouch_devtools.demo import run_demo
        from vouch_devtools.dev import DevError
    except ModuleNotFoundError as exc:
        return _no_devtools(exc, "demo", "demo")

    try:
        return run_demo()
    except DevError as exc:
        print(f"vouch-broker demo: {exc}", file=sys.stderr)
        return 1


def cmd_aws_setup(args: argparse.Namespace) -> int:
    import json

    import boto3

    from broker import aws_setup
    from broker.services import load_policy

    settings = _settings(args)
    catalog, org = load_policy(settings)
    the_plan = aws_setup.plan(settings, org, catalog)
    print(json.dumps(the_plan.describe(), indent=2))
    if args.apply:
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        # A session of its own: boto3's default one keeps whatever credentials it found first.
        iam = boto3.session.Session().client(
            "iam", endpoint_url=settings.aws.endpoint_url, region_name=settings.aws.region
        )
        try:
            for line in aws_setup.apply(the_plan, iam):
                print(line, file=sys.stderr)
            if settings.aws.endpoint_url:  # the local AWS emulator: no Bedrock to create it
                logs = boto3.session.Session().client(
                    "logs", endpoint_url=settings.aws.endpoint_url, region_name=settings.aws.region
                )
                group = settings.aws.invocation_log_group
                for line in aws_setup.ensure_invocation_log_group(logs, group):
                    print(line, file=sys.stderr)
        except NoCredentialsError:
            print(NO_AWS_CREDENTIALS, file=sys.stderr)
            return EXIT_CONFIG
        except EndpointConnectionError as exc:
            print(f"vouch-broker aws-setup --apply: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), error.get("Message", "")
            refused = f"vouch-broker aws-setup --apply: AWS refused: {code}: {message}"
            print(refused, file=sys.stderr)
            return EXIT_DENIED
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    """`usage`: who spent what, from Bedrock's model invocation logs (docs/usage.md)."""
    import asyncio

    from broker.services import load_policy
    from broker.usage import csv_text, table, usage_from_host
    from broker.usage_sources import SourceError
    from policies.duration import parse_duration

    settings = _settings(args)
    source = args.source or settings.usage_source
    if not source:
        print(
            "vouch-broker usage: no source: pass --from FILE|DIR|s3://BUCKET/PREFIX|"
            "cloudwatch[:GROUP] or set VOUCH_USAGE_SOURCE",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    since = parse_duration(args.since)
    if not since or since <= 0:
        print(
            f"vouch-broker usage: --since {args.since!r} is not a duration (24h, 7d, 90m)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    catalog, org = load_policy(settings)
    try:
        report, first_error = asyncio.run(
            usage_from_host(settings, catalog, org, source=source, since_s=since, by=args.by)
        )
    except SourceError as exc:
        print(f"vouch-broker usage: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE if exc.unavailable else EXIT_CONFIG
    if first_error:
        print(f"vouch-broker usage: skipped a line: {first_error}", file=sys.stderr)
    if args.json:
        import msgspec

        sys.stdout.write(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
        sys.stdout.write("\n")
    elif args.csv:
        sys.stdout.write(csv_text(report))
    else:
        sys.stdout.write(table(report))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but bad arguments exit 6 as in `vouch` (where 2 means "not signed in")."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_CONFIG, f"{self.prog}: {message}\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vouch-broker")
    except PackageNotFoundError:  # run from a tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vouch-broker",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vouch-broker {_version()}")
    parser.add_argument("--config", help="TOML settings file (VOUCH_* variables override it)")
    parser.add_argument("--verbose", action="store_true", help="the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the broker (settings from env / --config)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="manage the ES256 signing key directory")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    for name, text in (
        ("generate", "create an active and a next key in an empty directory"),
        ("rotate", "promote next to active, retire active, create a new next"),
        ("list", "show kid and state of every key"),
    ):
        p = keys_sub.add_parser(name, help=text)
        p.add_argument("--dir", help="key directory (default: VOUCH_SIGNING_KEYS)")
        p.add_argument(
            "--keep-retired",
            type=int,
            default=2 * 86400,
            help="seconds a retired key stays published (>= longest token lifetime)",
        )
        p.set_defaults(func=cmd_keys)
    revoke = keys_sub.add_parser(
        "revoke",
        help="emergency: out of the JWKS and the verifier now (every replica), file replaced",
    )
    revoke.add_argument("kids", nargs="+", metavar="KID", help="key id (kid) to revoke")
    replace = keys_sub.add_parser(
        "replace-all",
        help="emergency: revoke every key in the directory and create a fresh active and next",
    )
    for p in (revoke, replace):
        p.add_argument("--dir", help="key directory (default: VOUCH_SIGNING_KEYS)")
        p.set_defaults(func=cmd_keys)

    dev = sub.add_parser("dev", help="run broker + redis-server + local AWS emulator (development)")
    dev.add_argument(
        "--state-dir",
        default=".vouch-dev",
        help="keys and Redis data, one running stack each (default .vouch-dev)",
    )
    dev.add_argument("--port", type=int, default=8080, help="broker port (default 8080)")
    dev.add_argument(
        "--redis-port", type=int, help="redis-server port (default 6380 if free, else any)"
    )
    dev.add_argument(
        "--aws-port", type=int, help="AWS emulator port (default 5001 if free, else any)"
    )
    dev.add_argument("--real-aws", action="store_true", help="use real AWS, not the emulator")
    dev.set_defaults(func=cmd_dev)

    demo = sub.add_parser(
        "demo", help="the whole story on a private dev stack, checked step by step"
    )
    demo.set_defaults(func=cmd_demo)

    setup = sub.add_parser("aws-setup", help="print (or --apply) the IAM OIDC provider and role")
    setup.add_argument("--apply", action="store_true", help="create or update them through boto3")
    setup.set_defaults(func=cmd_aws_setup)

    invite = sub.add_parser("invite", help="create a one-time enrollment code (printed last)")
    invite.add_argument("email")
    invite.set_defaults(func=cmd_invite)

    usage = sub.add_parser(
        "usage",
        help="tokens and cost per person, agent, delegation or model, from Bedrock's logs",
        description="Bedrock usage from its model invocation logs: tokens and exact cost per "
        "person, agent, delegation or model (prices: VOUCH_PRICES_FILE; docs/usage.md).",
    )
    usage.add_argument(
        "--from",
        dest="source",
        metavar="FILE|DIR|s3://BUCKET/PREFIX|cloudwatch[:GROUP]",
        help="where the records are (default: VOUCH_USAGE_SOURCE)",
    )
    usage.add_argument(
        "--since", default="24h", metavar="DURATION", help="how far back (default 24h)"
    )
    usage.add_argument(
        "--by", choices=GROUPINGS, default="person", help="how rows are grouped (default person)"
    )
    output = usage.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="the report as JSON (exact costs)")
    output.add_argument("--csv", action="store_true", help="the rows as CSV (exact costs)")
    usage.set_defaults(func=cmd_usage)

    policy = sub.add_parser("policy", help="org policy tools")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_sub.add_parser(
        "check", help="validate an org policy, every error with its location"
    )
    check.add_argument("file")
    check.set_defaults(func=cmd_policy_check)
    return parser


def _kids_as_operands(argv: list[str]) -> list[str]:
    """`keys revoke KID...` with `--` before the kids: a kid is base64url and may start with
    `-`, which argparse would otherwise read as an unknown option."""
    if "keys" not in argv or "revoke" not in argv[argv.index("keys") :] or "--" in argv:
        return argv
    at = argv.index("revoke", argv.index("keys")) + 1
    options, kids, rest = [], [], argv[at:]
    while rest:
        word = rest.pop(0)
        if word == "--dir" and rest:
            options += [word, rest.pop(0)]
        elif word.startswith("--dir=") or word in ("-h", "--help"):
            options.append(word)
        else:
            kids.append(word)
    return [*argv[:at], *options, "--", *kids] if kids else argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_kids_as_operands(argv))
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except (SigningKeyError, PoliciesError, InvalidRequest) as exc:
        print(f"vouch-broker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreUnavailable as exc:
        print(f"vouch-broker: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        print("vouch-broker: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line, the traceback only when asked
        print(f"vouch-broker: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if args.verbose:
            traceback.print_exc()
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
