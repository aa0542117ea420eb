"""The `vouch` command: sign in with a security key, delegate to agents, get AWS credentials.

Each command group lives in its own module with a `register(commands, common)` that adds
its parsers and handlers; this module assembles them and turns errors into exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn, TextIO

from vouch_delegate._errors import BudgetExceeded, ConfigError, VouchError
from vouch_delegate._version import __version__
from vouch_delegate.cli import (
    admin,
    agent_key,
    aws,
    completion,
    delegate,
    models,
    signin,
    usage,
)
from vouch_delegate.cli._context import Context
from vouch_delegate.cli._exit import CONFIG, FAILED, exit_code
from vouch_delegate.cli._problem import json_asked, write_problem
from vouch_delegate.cli._text import printable

DESCRIPTION = """Delegate narrowly scoped, short-lived Amazon Bedrock access to AI agents.

  vouch enroll --server URL --email EMAIL              register your key (once; asks
                                                        for the invite code)
  vouch login                                           a key tap -> an 8 h session
  vouch models                                          what you may use and delegate
  vouch usage                                           what you and your agents spent
  vouch aws-profile                                     your own credentials as profile
                                                        "vouch" (aws ... --profile vouch)
  vouch delegate --agent NAME --model M --out F         a tap -> a token for the agent
  vouch credential aws --token-file F                   the agent's AWS credentials
  vouch aws-profile agent --token-file F                ... as profile "agent" for the
                                                        AWS CLI and SDKs
  vouch agent-key create --out K                        an agent's key; delegate with
                                                        --bind-key THUMBPRINT to bind to it
  vouch delegate revoke ID                              stop it now

exit codes: 0 ok, 1 failed, 2 not signed in, 3 no key, 4 network, 5 denied or revoked,
6 bad arguments or configuration (or no PIN: no terminal and $VOUCH_PIN unset), 7 wrong PIN"""


EPILOG = """examples:
  vouch enroll --server https://vouch.example.com --email alice@example.com
  vouch login
  vouch delegate --agent researcher --model us.claude-haiku-4-5 --ttl 2h --out agent.token
  vouch aws-profile --token-file agent.token     (then: aws ... --profile vouch)
  vouch exec --token-file agent.token -- python my_agent.py
  vouch delegate list --json                      (on failure: a JSON problem, exit_code in it)
  vouch completion bash > ~/.local/share/bash-completion/completions/vouch

`vouch COMMAND --help` shows each command's options and examples.
environment: VOUCH_SERVER, VOUCH_AUTHENTICATOR, VOUCH_PIN, VOUCH_AGENT_TOKEN,
VOUCH_AGENT_TOKEN_FILE, VOUCH_AGENT_KEY_FILE"""


class UsageError(SystemExit):
    """Bad arguments: argparse's message, printed; exit 6 (2 means "not signed in" here)."""

    def __init__(self, message: str) -> None:
        super().__init__(CONFIG)
        self.message = message


class Parser(argparse.ArgumentParser):
    """argparse, but bad arguments exit 6, with a JSON problem under --json (see `main`)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        sys.stderr.write(f"vouch: {message}\n")
        raise UsageError(message)


def _common(*, inherit: bool) -> argparse.ArgumentParser:
    # Accepted before or after the command. In subcommands the defaults are SUPPRESS so
    # a value given earlier on the line is not overwritten by a subparser's default.
    common = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if inherit else None
    flag = argparse.SUPPRESS if inherit else False
    group = common.add_argument_group("global options")
    group.add_argument(
        "--server",
        metavar="URL",
        default=default,
        help="broker URL (default: $VOUCH_SERVER, else the one saved at enroll/login)",
    )
    group.add_argument(
        "--authenticator",
        metavar="usb|soft:PATH",
        default=default,
        help="security key (default: $VOUCH_AUTHENTICATOR, else usb); PIN from $VOUCH_PIN",
    )
    group.add_argument(
        "--json", action="store_true", default=flag, help="machine-readable output on stdout"
    )
    group.add_argument("--verbose", action="store_true", default=flag, help="detail on errors")
    return common


def build_parser() -> Parser:
    parser = Parser(
        prog="vouch",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(inherit=False)],
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"vouch {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    common = _common(inherit=True)
    for module in (signin, models, usage, delegate, agent_key, aws, admin, completion):
        module.register(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. Under --json a failure also prints a problem document
    (`_problem.py`) on stdout, whatever failed: arguments, the broker, the key, or a bug."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(words)
    except UsageError as exc:
        if json_asked(words):  # the line did not parse: look for the option itself
            write_problem(sys.stdout, ConfigError(exc.message), CONFIG)
        raise
    as_json = bool(args.json)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        if as_json:
            write_problem(sys.stdout, ConfigError("no command given: see vouch --help"), CONFIG)
        return CONFIG
    ctx = Context(args, os.environ, sys.stdout, sys.stderr)
    try:
        return int(args.handler(ctx))
    except VouchError as exc:
        return _failed(exc, exit_code(exc), as_json=as_json, verbose=args.verbose)
    except KeyboardInterrupt:
        return _failed(_Interrupted("interrupted"), 130, as_json=as_json, verbose=False)
    except Exception as exc:  # a bug: one line, the traceback only when asked
        bug = VouchError(f"internal error: {type(exc).__name__}: {printable(exc)}")
        code = _failed(bug, FAILED, as_json=as_json, verbose=False)
        if args.verbose:
            traceback.print_exc()
        return code


class _Interrupted(VouchError):
    slug = "interrupted"


def _failed(exc: VouchError, code: int, *, as_json: bool, verbose: bool) -> int:
    _report(exc, sys.stderr, verbose=verbose)
    if as_json:
        write_problem(sys.stdout, exc, code)
    return code


def _report(exc: VouchError, err: TextIO, *, verbose: bool) -> None:
    # The detail and the problem's members may come from the broker: escaped, one line each.
    err.write(f"vouch: {printable(exc.detail)}\n")
    if isinstance(exc, BudgetExceeded):
        spent, budget = printable(exc.spent or "?"), printable(exc.budget or "?")
        err.write(
            f"vouch: budget spent: {spent} of {budget}; this delegation is revoked, ask its"
            " person for a new one\n"
        )
    if verbose:
        where = f"HTTP {exc.status}, " if exc.status else ""
        err.write(f"vouch: ({where}{type(exc).__name__}, slug {printable(exc.slug)})\n")
        for name, value in exc.problem.items():
            if name not in {"detail", "type", "status"}:
                err.write(f"vouch:   {printable(name)}: {printable(value)}\n")
        if exc.__cause__ is not None:
            err.write(f"vouch:   cause: {printable(repr(exc.__cause__))}\n")
