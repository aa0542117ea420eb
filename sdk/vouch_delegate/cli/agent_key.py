"""agent-key create: the key an agent holds so that its token is bound to it (DPoP)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from vouch_delegate._agent_key import AgentKey
from vouch_delegate.cli._context import Context
from vouch_delegate.cli._exit import OK

EPILOG = """examples:
  vouch agent-key create --out agent.key          (on the agent's side; prints the thumbprint)
  vouch delegate --agent bot --model us.claude-haiku-4-5 --bind-key THUMBPRINT --out a.token
                                                  (the person binds the token to that key)
  vouch credential aws --token-file agent.token --key-file agent.key

The key file (P-256, PKCS#8 PEM) is created with mode 0600 and never overwritten; vouch
refuses a key file that group or others can read. The token bound to it is exchanged only
with a fresh proof signed by this key, so a copy of the token alone gets nothing. The
public key is printed as a JWK; its RFC 7638 thumbprint is the last line."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    agent_key = commands.add_parser(
        "agent-key",
        parents=[common],
        help="an agent's own key, to bind its token to (DPoP)",
        description="Create the key an agent holds; a delegation bound to it is useless"
        " without it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = agent_key.add_subparsers(title="subcommands", metavar="{create}", required=True)
    create = actions.add_parser(
        "create",
        parents=[common],
        help="write a new P-256 key file (0600) and print its thumbprint",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create.add_argument("--out", metavar="FILE", required=True, help="the key file to create")
    create.set_defaults(handler=run_create)


def run_create(ctx: Context) -> int:
    key = AgentKey.create(ctx.args.out)
    ctx.info(f"Agent key written to {ctx.args.out} (mode 0600). Public key (JWK):")
    ctx.info(json.dumps(key.public_jwk, sort_keys=True))
    ctx.info("Bind a delegation to it with: vouch delegate ... --bind-key THUMBPRINT")
    ctx.emit(
        {"key_file": ctx.args.out, "jwk": key.public_jwk, "thumbprint": key.thumbprint},
        key.thumbprint,
    )
    return OK
