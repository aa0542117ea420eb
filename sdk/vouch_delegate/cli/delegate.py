"""delegate, delegate approve | deny | list | revoke: what an agent may do, signed by a tap."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from vouch_delegate._errors import ConfigError
from vouch_delegate._grant import (
    check_grant_matches,
    format_duration,
    parse_duration,
    verified_grant,
)
from vouch_delegate.cli._context import Context, when
from vouch_delegate.cli._exit import OK
from vouch_delegate.cli._store import write_private

EPILOG = """examples:
  vouch delegate --agent researcher --model us.claude-haiku-4-5 --ttl 2h --out agent.token
  vouch delegate --agent coder --model us.claude-sonnet-4-5 --purpose "refactor PR 42"
  vouch delegate approve BCDF-GHJK      (an agent asked with request_delegation)
  vouch delegate list --json
  vouch delegate revoke dlg_abc123

The grant is shown before the key asks for a tap; the tap signs exactly that grant.
Without --out the agent token is printed once on stdout."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    delegate = commands.add_parser(
        "delegate",
        parents=[common],
        help="give an agent time-boxed access to named models (a key tap)",
        description="Delegate named Bedrock models to an agent for a limited time.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    delegate.add_argument("--agent", metavar="NAME", help="agent name ([a-z0-9-], up to 32)")
    delegate.add_argument(
        "--model", dest="models", action="append", metavar="M", help="a model (repeatable)"
    )
    delegate.add_argument("--ttl", default="2h", help="how long the token lives (default 2h)")
    delegate.add_argument("--purpose", default="", help="why; recorded in the audit trail")
    delegate.add_argument("--max-sts", metavar="DURATION", help="cap each AWS credential's life")
    delegate.add_argument("--rate", type=int, metavar="N", help="cap exchanges per hour")
    delegate.add_argument("--out", metavar="FILE", help="write the token here (0600), not stdout")
    delegate.set_defaults(handler=run_delegate)
    _register_actions(delegate, common)


def _register_actions(delegate: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = delegate.add_subparsers(title="subcommands", metavar="{approve,deny,list,revoke}")
    approve = actions.add_parser(
        "approve", parents=[common], help="approve an agent's request by its user code (a tap)"
    )
    approve.add_argument("user_code", help="the code the agent relayed, e.g. BCDF-GHJK")
    approve.set_defaults(handler=run_approve)
    deny = actions.add_parser("deny", parents=[common], help="refuse an agent's request")
    deny.add_argument("user_code", help="the code the agent relayed")
    deny.set_defaults(handler=run_deny)
    listing = actions.add_parser("list", parents=[common], help="your active delegations")
    listing.add_argument("--all", action="store_true", help="everybody's (admins only)")
    listing.set_defaults(handler=run_list)
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a delegation now")
    revoke.add_argument("id", help="the delegation id (dlg_...)")
    revoke.set_defaults(handler=run_revoke)


def run_delegate(ctx: Context) -> int:
    args = ctx.args
    if not args.agent or not args.models:
        raise ConfigError(
            "vouch delegate needs --agent NAME and at least one --model M "
            "(or a subcommand: approve, deny, list, revoke)"
        )
    if args.out and not Path(args.out).expanduser().parent.is_dir():
        raise ConfigError(f"--out: no such directory for {args.out}")
    wanted = {
        "agent": args.agent,
        "models": args.models,
        "ttl_s": parse_duration(args.ttl),
        "purpose": args.purpose,
        "max_sts_s": parse_duration(args.max_sts) if args.max_sts else None,
        "rate": args.rate,
    }
    session = ctx.session()
    proposal = ctx.call(
        "POST", "/v1/delegations/begin", body={k: v for k, v in wanted.items() if v is not None}
    )
    grant = verified_grant(proposal)
    check_grant_matches(grant, {**wanted, "models": None, "email": session.email})
    key = ctx.key()
    show_grant(ctx, grant, "You are delegating (your key tap signs exactly this):")
    done = _complete(ctx, key.sign(proposal["options"]), proposal)
    _deliver(ctx, done)
    return OK


def _complete(ctx: Context, assertion: Any, proposal: dict[str, Any]) -> dict[str, Any]:
    body = {"challenge_id": proposal["challenge_id"], "credential": assertion}
    return ctx.call("POST", "/v1/delegations/complete", body=body)


def _deliver(ctx: Context, done: dict[str, Any]) -> None:
    record, token = done["delegation"], str(done["token"])
    ctx.info(f"Delegation {record['id']} for {record['agent']} until {when(record['expires_at'])}")
    if ctx.args.out:
        path = Path(ctx.args.out).expanduser()
        write_private(path, token + "\n")
        ctx.info(f"Agent token written to {path} (mode 0600).")
        ctx.emit({"delegation": record, "token_file": str(path)})
    else:
        ctx.emit({"delegation": record, "token": token}, token)


def show_grant(ctx: Context, grant: dict[str, Any], heading: str, *, why: str = "purpose") -> None:
    """The signed grant, field by field, on stderr (stdout may be a token file)."""
    models = list(grant.get("models") or [])
    ttl = int(grant.get("ttl_s") or 0)
    lines = [
        heading,
        f"  person:   {_printable(grant.get('email'))}",
        f"  agent:    {_printable(grant.get('agent'))}",
        f"  models:   {_printable(models[0]) if models else '(none)'}",
        *(f"            {_printable(m)}" for m in models[1:]),
        f"  lifetime: {format_duration(ttl)}, until about {when(time.time() + ttl)}",
    ]
    if grant.get("purpose"):
        lines.append(f"  {why + ':':<9} {_printable(grant['purpose'])}")
    if grant.get("max_sts_s"):
        lines.append(f"  AWS credentials live at most {format_duration(int(grant['max_sts_s']))}")
    if grant.get("rate"):
        lines.append(f"  at most {grant['rate']} exchanges per hour")
    ctx.info("\n".join(lines))


def _printable(value: object) -> str:
    # Text chosen by an agent must not be able to redraw the terminal the person reads.
    text = str(value)
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def run_approve(ctx: Context) -> int:
    session = ctx.session()
    key = ctx.key()
    proposal = ctx.call("POST", "/v1/delegations/begin", body={"request_code": ctx.args.user_code})
    grant = verified_grant(proposal)
    check_grant_matches(grant, {"email": session.email})
    heading = f"Agent request {ctx.args.user_code} (your key tap approves this):"
    show_grant(ctx, grant, heading, why="message")
    done = _complete(ctx, key.sign(proposal["options"]), proposal)
    record = done["delegation"]
    ctx.info(f"Approved: delegation {record['id']}; the agent receives its token directly.")
    ctx.emit({"delegation": record, "request_id": done.get("request_id")})
    return OK


def run_deny(ctx: Context) -> int:
    ctx.call("POST", "/v1/delegation-requests/deny", body={"user_code": ctx.args.user_code})
    ctx.info(f"Denied agent request {ctx.args.user_code}.")
    ctx.emit({"user_code": ctx.args.user_code, "status": "denied"})
    return OK


def run_list(ctx: Context) -> int:
    query = {"all": "true"} if ctx.args.all else None
    delegations = ctx.call("GET", "/v1/delegations", query=query).get("delegations", [])
    rows = [_row(d, with_email=ctx.args.all) for d in delegations]
    ctx.emit({"delegations": delegations}, "\n".join(rows) if rows else "no active delegations")
    return OK


def _row(record: dict[str, Any], *, with_email: bool) -> str:
    state = "REVOKED" if record.get("revoked_at") else when(record.get("expires_at"))
    who = f"{record.get('email', ''):<28} " if with_email else ""
    models = ",".join(record.get("models") or [])
    return f"{record['id']:<22} {who}{record.get('agent', ''):<16} {state:<40} {models}"


def run_revoke(ctx: Context) -> int:
    record = ctx.call("DELETE", f"/v1/delegations/{quote(ctx.args.id, safe='')}")
    ctx.info(f"Revoked {record['id']} ({record['agent']}); its next exchange is refused.")
    ctx.emit(record)
    return OK
