"""credential aws, exec, aws-profile: AWS credentials for other programs, an agent's (its
token) or, without a token, the signed-in person's own (their `vouch login` session)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vouch_delegate._credentials import (
    _REGION,
    REGION_HEADER,
    AgentCredentials,
    AwsCredentials,
    _local_expiry,
)
from vouch_delegate._errors import ConfigError, NotSignedIn
from vouch_delegate._grant import parse_duration
from vouch_delegate._token import TOKEN_ENV, TOKEN_FILE_ENV
from vouch_delegate.cli._aws_config import config_path, section_name, write_profile
from vouch_delegate.cli._context import Context
from vouch_delegate.cli._exit import OK
from vouch_delegate.cli._own_credentials import OwnCredentialCache

CREDENTIAL_EPILOG = """examples:
  vouch credential aws                              your own, after vouch login
  vouch credential aws --token-file ~/.config/vouch/agent.token
  vouch credential aws --token-file agent.token --key-file agent.key   (a bound token)
  vouch credential aws --model us.claude-haiku-4-5 --duration 1h

So that any AWS SDK or the aws CLI fetches credentials through vouch, write a profile:
  vouch aws-profile                                 profile "vouch": your own
  vouch aws-profile agent --token-file ~/.config/vouch/agent.token
  aws sts get-caller-identity --profile vouch

An agent's token comes from --token-file, else $VOUCH_AGENT_TOKEN, else
$VOUCH_AGENT_TOKEN_FILE; a token bound to the agent's key needs that key: --key-file,
else $VOUCH_AGENT_KEY_FILE. With none of them the credentials are your own: the models the
org policy lets you use yourself (vouch models), ending with your session, kept (0600)
under $XDG_CACHE_HOME/vouch until shortly before they expire so that a burst of AWS
commands exchanges once; without a session this fails in one line, exit 2 (run vouch
login: credential_process cannot ask for a key tap). The broker is --server, else
$VOUCH_SERVER, else the token's issuer or your session's broker. Only the
credential_process JSON document is written to stdout."""

EXEC_EPILOG = """examples:
  vouch exec --token-file agent.token -- aws sts get-caller-identity
  vouch exec --model us.claude-haiku-4-5 -- python my_agent.py

CMD runs with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and
AWS_CREDENTIAL_EXPIRATION set, AWS_REGION and AWS_DEFAULT_REGION set to the broker's region
unless either is set already, and every VOUCH_* variable removed (the token, its file, the
PIN); vouch exits with CMD's exit code. CMD runs as you, so it can still read any file you
can, the token file included: see docs/agents.md. The credentials are not refreshed:
long-running programs should use the SDK or credential_process instead."""


PROFILE_EPILOG = """examples:
  vouch aws-profile                                     # profile "vouch": your own
  vouch aws-profile agent --token-file agent.jwt        # an agent's
  vouch aws-profile research --token-file agent.jwt --region us-west-2
  vouch aws-profile bound --token-file agent.jwt --key-file agent.key   # a bound token
  aws sts get-caller-identity --profile vouch

Writes into $AWS_CONFIG_FILE, else ~/.aws/config (created 0600), the profile's
  credential_process = /absolute/path/of/this/vouch credential aws [--token-file /abs/path
    [--key-file /abs/path]]
  region = the broker's region (asked with one exchange), unless --region
  endpoint_url = URL, with --endpoint-url (a local AWS emulator)
keeping every other profile, setting and comment; running it again changes nothing."""


def _agent_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token-file", metavar="F", help="file holding the agent token (0600)")
    parser.add_argument(
        "--key-file",
        metavar="K",
        help="the agent key of a bound token (0600; signs a DPoP proof per exchange)",
    )
    parser.add_argument(
        "--model", dest="models", action="append", metavar="M", help="narrow to a granted model"
    )
    parser.add_argument("--duration", metavar="DURATION", help="credential lifetime (min 15m)")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    credential = commands.add_parser(
        "credential", parents=[common], help="AWS credentials: your own, or an agent's"
    )
    kinds = credential.add_subparsers(title="kinds", metavar="{aws}", required=True)
    aws = kinds.add_parser(
        "aws",
        parents=[common],
        help="print a credential_process document",
        description="AWS credentials as credential_process JSON: an agent token's, or"
        " without one, your own (the signed-in person's).",
        epilog=CREDENTIAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _agent_options(aws)
    aws.set_defaults(handler=run_credential_aws)
    run = commands.add_parser(
        "exec",
        parents=[common],
        help="run a command with AWS credentials (an agent's, or your own) in its environment",
        usage="vouch exec [--token-file F [--key-file K]] [--model M] -- CMD [ARGS ...]",
        epilog=EXEC_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _agent_options(run)
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    run.set_defaults(handler=run_exec)
    profile = commands.add_parser(
        "aws-profile",
        parents=[common],
        help="write an AWS config profile whose credential_process is this vouch (yours,"
        " or an agent's)",
        usage="vouch aws-profile [NAME] [--token-file F [--key-file K]] [--region R]"
        " [--endpoint-url URL]",
        epilog=PROFILE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    profile.add_argument("name", nargs="?", default="vouch", help="profile (default: vouch)")
    profile.add_argument(
        "--token-file", metavar="F", help="an agent's token file (0600); without it, your own"
    )
    profile.add_argument("--key-file", metavar="K", help="the agent key of a bound token (0600)")
    profile.add_argument("--region", metavar="R", help="default: the broker's region")
    profile.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="AWS endpoint for the profile (a local AWS emulator, e.g. under make run)",
    )
    profile.set_defaults(handler=run_aws_profile)


def _agent_token_given(ctx: Context) -> bool:
    """Whether an agent's token is named; without one, credentials are the person's own."""
    args, env = ctx.args, ctx.env
    return bool(
        getattr(args, "token_file", None)
        or env.get(TOKEN_ENV, "").strip()
        or env.get(TOKEN_FILE_ENV, "").strip()
    )


_AGENT_HINT = f"--token-file F, or set {TOKEN_FILE_ENV} (or {TOKEN_ENV})"


def _credentials(ctx: Context) -> tuple[AwsCredentials, str | None]:
    """(credentials, the broker's region): the agent token's, else the person's own."""
    if _agent_token_given(ctx):
        source = _exchanged(ctx)
        return source.get(), source.region
    try:
        return _own(ctx)
    except NotSignedIn as exc:  # one line that names both ways to credentials
        raise NotSignedIn(f"{exc}; for an agent's credentials: {_AGENT_HINT}") from None


def _own(ctx: Context) -> tuple[AwsCredentials, str | None]:
    """The signed-in person's own credentials: from the local cache, else one exchange.

    Raises: NotSignedIn (exit 2) without a usable session: credential_process cannot ask
    for a key tap, so `vouch login` is the one ceremony.
    """
    session = ctx.session()
    token, email = session.token or "", session.email or ""
    models = getattr(ctx.args, "models", None)
    asked = getattr(ctx.args, "duration", None)
    duration = parse_duration(asked) if asked else None
    cache = OwnCredentialCache.of(ctx.env, ctx.server, email)
    started = time.time()
    hit = cache.get(token, models, duration, started)
    if hit is not None:
        return AwsCredentials.from_process_document(hit.document), hit.region
    document = ctx.client().own_credentials_aws(models=models, duration_s=duration)
    fresh = AwsCredentials.from_document(document)
    end = session.expires_at
    if end and fresh.expiration.timestamp() > end:  # the session policy ends them then
        fresh = dataclasses.replace(fresh, expiration=datetime.fromtimestamp(end, tz=UTC))
    region = ctx.http.answer_header(REGION_HEADER)
    region = region if region is not None and _REGION.fullmatch(region) else None
    try:
        cache.put(
            token,
            models,
            duration,
            document=fresh.process_document(),
            region=region,
            fetched_at=started,
            expires_at=_local_expiry(fresh, started, ctx.http.broker_date()),
        )
    except OSError as exc:  # the credentials are good; only the next call exchanges again
        ctx.info(f"warning: credentials not cached in {cache.path.parent} ({exc.strerror})")
    return fresh, region


def _exchanged(ctx: Context) -> AgentCredentials:
    """The agent's credentials, freshly exchanged (with the broker's region)."""
    args = ctx.args
    source = AgentCredentials(
        args.server or None,
        token_file=args.token_file,
        models=args.models,
        duration_s=parse_duration(args.duration) if args.duration else None,
        transport=ctx.http,
        key_file=args.key_file,
    )
    source.refresh()
    return source


def run_credential_aws(ctx: Context) -> int:
    document = _credentials(ctx)[0].process_document()
    # credential_process reads stdout as one JSON document: nothing else may go there.
    ctx.out.write(json.dumps(document) + "\n")
    ctx.out.flush()
    return OK


def child_environment(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without VOUCH_*: the agent token, its file, the PIN and the key stay with vouch.

    A program that prints its environment (an agent talked into it) then leaks only the
    AWS credentials, which expire in minutes, not the refreshable token or the key's PIN.
    """
    return {name: value for name, value in env.items() if not name.startswith("VOUCH_")}


_TOKEN_VARIABLES = (TOKEN_ENV, TOKEN_FILE_ENV)


def run_exec(ctx: Context) -> int:
    command = list(ctx.args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise ConfigError("vouch exec needs a command: vouch exec [OPTIONS] -- CMD [ARGS ...]")
    credentials, region = _credentials(ctx)
    env = {**child_environment(ctx.env), **credentials.environment()}
    if region and not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        # The broker's home region, where the grant's models are called, unless the caller
        # chose one (aws-vault's exec sets both too: SDKs differ in which they read).
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
    ctx.out.flush()
    ctx.err.flush()
    try:
        # exec, not a child: the command gets our pid, signals and exit status unchanged.
        os.execvpe(command[0], command, env)  # noqa: S606
    except FileNotFoundError:
        raise ConfigError(f"command not found: {command[0]}") from None
    except PermissionError:
        raise ConfigError(f"command is not executable: {command[0]}") from None


def vouch_command() -> list[str]:
    """The running vouch, as an absolute command another program (the AWS CLI) can run."""
    script = Path(sys.argv[0])
    if script.name == "vouch" and script.is_file():
        return [os.path.abspath(script)]
    return [os.path.abspath(sys.executable), "-m", "vouch_delegate.cli"]


def run_aws_profile(ctx: Context) -> int:
    args = ctx.args
    name = args.token_file or ctx.env.get(TOKEN_FILE_ENV)
    section_name(args.name)  # a bad name is refused before anything is asked
    command = [*vouch_command(), "credential", "aws"]
    if name:  # an agent's profile
        token_file = Path(name).expanduser().absolute()
        key_file = Path(args.key_file).expanduser().absolute() if args.key_file else None
        source = AgentCredentials(
            args.server or None, token_file=token_file, transport=ctx.http, key_file=key_file
        )
        region = args.region or source.region  # one exchange: the token works, and the region
        command += ["--token-file", str(token_file)]
        if key_file is not None:
            command += ["--key-file", str(key_file)]
    else:  # the person's own: one exchange (then cached) shows the session and rules work
        region = args.region or _own(ctx)[1]
    if not region:
        raise ConfigError("the broker did not say its region: pass --region R")
    server = args.server or ctx.env.get("VOUCH_SERVER")
    if server:  # the AWS CLI's environment may not have VOUCH_SERVER
        command += ["--server", server]
    settings = {"credential_process": shlex.join(command), "region": region}
    if args.endpoint_url:
        settings["endpoint_url"] = args.endpoint_url
    path = config_path(ctx.env)
    changed = write_profile(path, args.name, settings)
    if ctx.args.json:
        ctx.emit({"profile": args.name, "config_file": str(path), "changed": changed, **settings})
        return OK
    what = "written to" if changed else "already in"
    ctx.info(f"profile {args.name} {what} {path}:")
    ctx.info(f"  credential_process = {settings['credential_process']}")
    for key in list(settings)[1:]:
        ctx.info(f"  {key} = {settings[key]}")
    ctx.info(f"try: aws sts get-caller-identity --profile {args.name}")
    return OK
