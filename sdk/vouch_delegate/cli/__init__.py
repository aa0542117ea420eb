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

from vouch_delegate._errors import VouchError
from vouch_delegate._version import __version__
from vouch_delegate.cli import admin, aws, delegate, models, signin
from vouch_delegate.cli._context import Context
from vouch_delegate.cli._exit import CONFIG, FAILED, exit_code
from vouch_delegate.cli._text import printable

DESCRIPTION = """Delegate narrowly scoped, short-lived Amazon Bedrock access to AI agents.

  vouch enroll --server URL --email EMAIL              register your key (once; asks
                                                        for the invite code)
  vouch login                                           a key tap -> an 8 h session
  vouch models                                          what you may use and delegate
  vouch aws-profile                                     your own credentials as profile
                                                        "vouch" (aws ... --profile vouch)
  vouch delegate --agent NAME --model M --out F         a tap -> a token for the agent
  vouch credential aws --token-file F                   the agent's AWS credentials
  vouch aws-profile agent --token-file F                ... as profile "agent" for the
                                                        AWS CLI and SDKs
  vouch delegate revoke ID                              stop it now

exit codes: 0 ok, 1 failed, 2 not signed in, 3 no key, 4 network, 5 denied or revoked,
6 bad arguments or configuration (or no PIN: no terminal and $VOUCH_PIN unset), 7 wrong PIN"""


class Parser(argparse.ArgumentParser):
    """argparse, but bad arguments exit 6 (2 means "not signed in" here)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(CONFIG, f"vouch: {message}\n")


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
        epilog="environment: VOUCH_SERVER, VOUCH_AUTHENTICATOR, VOUCH_PIN, "
        "VOUCH_AGENT_TOKEN, VOUCH_AGENT_TOKEN_FILE",
    )
    parser.add_argument("--version", action="version", version=f"vouch {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    common = _common(inherit=True)
    for module in (signin, models, delegate, aws, admin):
        module.register(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return CONFIG
    ctx = Context(args, os.environ, sys.stdout, sys.stderr)
    try:
        return int(args.handler(ctx))
    except VouchError as exc:
        _report(exc, sys.stderr, verbose=args.verbose)
        return exit_code(exc)
    except KeyboardInterrupt:
        sys.stderr.write("vouch: interrupted\n")
        return 130
    except Exception as exc:  # a bug: one line, the traceback only when asked
        sys.stderr.write(f"vouch: internal error: {type(exc).__name__}: {printable(exc)}\n")
        if args.verbose:
            traceback.print_exc()
        return FAILED


def _report(exc: VouchError, err: TextIO, *, verbose: bool) -> None:
    # The detail and the problem's members may come from the broker: escaped, one line each.
    err.write(f"vouch: {printable(exc.detail)}\n")
    if verbose:
        where = f"HTTP {exc.status}, " if exc.status else ""
        err.write(f"vouch: ({where}{type(exc).__name__}, slug {printable(exc.slug)})\n")
        for name, value in exc.problem.items():
            if name not in {"detail", "type", "status"}:
                err.write(f"vouch:   {printable(name)}: {printable(value)}\n")
        if exc.__cause__ is not None:
            err.write(f"vouch:   cause: {printable(repr(exc.__cause__))}\n")
