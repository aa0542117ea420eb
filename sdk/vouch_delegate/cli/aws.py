"""credential aws, exec: an agent token exchanged for AWS credentials, for other programs."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import Any

from vouch_delegate._credentials import AgentCredentials, AwsCredentials
from vouch_delegate._errors import ConfigError
from vouch_delegate._grant import parse_duration
from vouch_delegate.cli._context import Context
from vouch_delegate.cli._exit import OK

CREDENTIAL_EPILOG = """examples:
  vouch credential aws --token-file ~/.config/vouch/agent.token
  vouch credential aws --model us.claude-haiku-4-5 --duration 1h

In ~/.aws/config, so any AWS SDK or the aws CLI fetches credentials through vouch:
  [profile agent]
  credential_process = vouch credential aws --token-file /home/me/.config/vouch/agent.token
  region = us-east-1

The token comes from --token-file, else $VOUCH_AGENT_TOKEN, else $VOUCH_AGENT_TOKEN_FILE;
the broker from --server, else $VOUCH_SERVER, else the token's issuer. Only the
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


def _agent_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token-file", metavar="F", help="file holding the agent token (0600)")
    parser.add_argument(
        "--model", dest="models", action="append", metavar="M", help="narrow to a granted model"
    )
    parser.add_argument("--duration", metavar="DURATION", help="credential lifetime (min 15m)")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    credential = commands.add_parser(
        "credential", parents=[common], help="AWS credentials for an agent token"
    )
    kinds = credential.add_subparsers(title="kinds", metavar="{aws}", required=True)
    aws = kinds.add_parser(
        "aws",
        parents=[common],
        help="print a credential_process document",
        description="Exchange an agent token for AWS credentials (credential_process JSON).",
        epilog=CREDENTIAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _agent_options(aws)
    aws.set_defaults(handler=run_credential_aws)
    run = commands.add_parser(
        "exec",
        parents=[common],
        help="run a command with the agent's AWS credentials in its environment",
        usage="vouch exec [--token-file F] [--model M] -- CMD [ARGS ...]",
        epilog=EXEC_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _agent_options(run)
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    run.set_defaults(handler=run_exec)


def _exchange(ctx: Context) -> AwsCredentials:
    return _exchanged(ctx).get()


def _exchanged(ctx: Context) -> AgentCredentials:
    """The agent's credentials, freshly exchanged (with the broker's region)."""
    args = ctx.args
    source = AgentCredentials(
        args.server or None,
        token_file=args.token_file,
        models=args.models,
        duration_s=parse_duration(args.duration) if args.duration else None,
        transport=ctx.http,
    )
    source.refresh()
    return source


def run_credential_aws(ctx: Context) -> int:
    document = _exchange(ctx).process_document()
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


def run_exec(ctx: Context) -> int:
    command = list(ctx.args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise ConfigError("vouch exec needs a command: vouch exec [OPTIONS] -- CMD [ARGS ...]")
    source = _exchanged(ctx)
    env = {**child_environment(ctx.env), **source.get().environment()}
    if source.region and not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        # The broker's home region, where the grant's models are called, unless the caller
        # chose one (aws-vault's exec sets both too: SDKs differ in which they read).
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = source.region
    ctx.out.flush()
    ctx.err.flush()
    try:
        # exec, not a child: the command gets our pid, signals and exit status unchanged.
        os.execvpe(command[0], command, env)  # noqa: S606
    except FileNotFoundError:
        raise ConfigError(f"command not found: {command[0]}") from None
    except PermissionError:
        raise ConfigError(f"command is not executable: {command[0]}") from None
