"""delegate, delegate approve | deny | requests | list | revoke: what an agent may do, signed
by a tap."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from vouch_delegate._agent_key import thumbprint_from_file
from vouch_delegate._client import BrokerClient
from vouch_delegate._errors import ConfigError, GrantMismatch, InvalidResponse, VouchError
from vouch_delegate._grant import (
    check_grant_matches,
    check_requested_grant,
    format_duration,
    parse_duration,
    verified_grant,
)
from vouch_delegate._messages import AgentToken, Delegation, Grant, PendingRequest
from vouch_delegate.cli._context import Context, when
from vouch_delegate.cli._exit import OK
from vouch_delegate.cli._retry import until_confirmed
from vouch_delegate.cli._text import AWS_WAIT_S, aws_line, printable, wrapped
from vouch_delegate.cli._token_out import TokenOut

EPILOG = """examples:
  vouch delegate --agent researcher --model us.claude-haiku-4-5 --ttl 2h --out agent.token
  vouch delegate --agent coder --model us.claude-sonnet-4-5 --purpose "refactor PR 42"
  vouch delegate --agent bot --model us.claude-haiku-4-5 --bind-key THUMBPRINT --out a.token
  vouch delegate approve BCDF-GHJK      (an agent asked with request_delegation)
  vouch delegate requests               (what agents asked you; deny what you do not know)
  vouch delegate list --all             (revoked ones too: what, by whom, why)
  vouch delegate revoke dlg_abc123

The grant is shown before the key asks for a tap; the tap signs exactly that grant.
Without --out the agent token is printed once on stdout. With --bind-key the token is bound
to the agent's key (vouch agent-key create): useless without it."""


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
    delegate.add_argument(
        "--budget",
        metavar="AMOUNT",
        help="cap what the delegation may spend (e.g. 5.00, the broker's price table currency,"
        " USD by default): once spent, the broker revokes it",
    )
    delegate.add_argument("--out", metavar="FILE", help="write the token here (0600), not stdout")
    delegate.add_argument(
        "--bind-key",
        metavar="THUMBPRINT|FILE",
        help="bind the agent token to the agent's key (cnf.jkt; from vouch agent-key create):"
        " its thumbprint, or a file with its public key (JWK or PEM)",
    )
    delegate.set_defaults(handler=run_delegate)
    _register_actions(delegate, common)


def _register_actions(delegate: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = delegate.add_subparsers(
        title="subcommands", metavar="{approve,deny,requests,list,revoke}"
    )
    approve = actions.add_parser(
        "approve", parents=[common], help="approve an agent's request by its user code (a tap)"
    )
    approve.add_argument("user_code", help="the code the agent relayed, e.g. BCDF-GHJK")
    approve.set_defaults(handler=run_approve)
    deny = actions.add_parser("deny", parents=[common], help="refuse an agent's request")
    deny.add_argument("user_code", help="the code the agent relayed")
    deny.set_defaults(handler=run_deny)
    requests = actions.add_parser(
        "requests", parents=[common], help="agents' requests waiting for your answer"
    )
    requests.set_defaults(handler=run_requests)
    listing = actions.add_parser(
        "list",
        parents=[common],
        help="your active delegations (--all: revoked ones too)",
        description="Your active delegations, one a row under a header; --all adds the "
        "revoked ones, with what was revoked (the delegation, its agent, you, or your key), "
        "by whom and why. The broker forgets a delegation a minute after it expires.",
    )
    listing.add_argument(
        "--all", action="store_true", help="every state: revoked ones too, not only active"
    )
    listing.add_argument("--everyone", action="store_true", help="everybody's (admins only)")
    listing.set_defaults(handler=run_list)
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a delegation now")
    revoke.add_argument("id", help="the delegation id (dlg_...)")
    revoke.add_argument(
        "--no-wait",
        action="store_true",
        help="answer at once, without waiting (up to 10 s) for AWS to deny live sessions",
    )
    revoke.set_defaults(handler=run_revoke)


def run_delegate(ctx: Context) -> int:
    args = ctx.args
    if not args.agent or not args.models:
        raise ConfigError(
            "vouch delegate needs --agent NAME and at least one --model M "
            "(or a subcommand: approve, deny, requests, list, revoke)"
        )
    ttl_s = parse_duration(args.ttl)
    max_sts_s = parse_duration(args.max_sts) if args.max_sts else None
    jkt = bind_key_thumbprint(args.bind_key) if args.bind_key else None
    budget = parse_amount(args.budget) if args.budget is not None else None
    session = ctx.session()
    # Before the tap, which cannot be taken back: a token with nowhere to go is a live
    # delegation nobody holds.
    out = TokenOut.prepare(Path(args.out).expanduser()) if args.out else None
    try:
        broker = ctx.client()
        proposal = broker.delegation_begin(
            agent=args.agent,
            models=args.models,
            ttl_s=ttl_s,
            purpose=args.purpose,
            max_sts_s=max_sts_s,
            rate=args.rate,
            bind_key=jkt,
            budget=budget,
        )
        grant = verified_grant(proposal)
        check_requested_grant(
            grant,
            email=session.email,
            agent=args.agent,
            models=args.models,
            ttl_s=ttl_s,
            purpose=args.purpose,
            max_sts_s=max_sts_s,
            rate=args.rate,
            budget=budget,
        )
        check_grant_matches(grant, {"jkt": jkt})
        if jkt is None and grant.jkt is not None:
            raise GrantMismatch("the broker proposed a key binding that was not requested")
        key = ctx.key()
        show_grant(ctx, grant, "You are delegating (your key tap signs exactly this):")
        assertion = key.sign(proposal.options.public_key)
        done = broker.delegation_complete(proposal.challenge_id, assertion)
        _deliver(ctx, broker, done, out)
    finally:
        if out is not None:
            out.discard()
    return OK


_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")
_AMOUNT = re.compile(r"[0-9]{1,7}(?:\.[0-9]{1,6})?")


def parse_amount(value: str) -> str:
    """A budget as the broker takes it ("5", "5.00": at most six decimals), as typed.

    Raises:
        ConfigError: anything else, or zero.
    """
    text = value.strip()
    if _AMOUNT.fullmatch(text) is None or not any(c in "123456789" for c in text):
        raise ConfigError(
            f"--budget: not an amount: {value!r} (use e.g. 5 or 5.00, at most six decimals)"
        )
    return text


def bind_key_thumbprint(value: str) -> str:
    """--bind-key: a thumbprint as given, or the thumbprint of the key in that file.

    Raises:
        ConfigError: neither a thumbprint nor a readable key file.
    """
    if _THUMBPRINT.fullmatch(value) and not Path(value).exists():
        return value
    if not Path(value).expanduser().exists():
        raise ConfigError(
            f"--bind-key {printable(value)}: not a key thumbprint (43 base64url characters)"
            " nor a key file"
        )
    return thumbprint_from_file(value)


def _deliver(ctx: Context, broker: BrokerClient, done: AgentToken, out: TokenOut | None) -> None:
    record, token = done.delegation, done.token
    if token is None:
        raise InvalidResponse("the broker completed the delegation without an agent token")
    ctx.info(
        f"Delegation {printable(record.id)} for {printable(record.agent)} "
        f"until {when(record.expires_at)}"
    )
    if out is None:
        ctx.emit({"delegation": record, "token": token}, token)
        return
    try:
        out.commit(token + "\n")
    except OSError as exc:
        reason = f"cannot write the agent token to {out.path}: {exc.strerror or exc}"
        raise _revoked_instead(broker, record.id, reason) from exc
    ctx.info(f"Agent token written to {out.path} (mode 0600).")
    ctx.emit({"delegation": record, "token_file": str(out.path)})


def _revoked_instead(broker: BrokerClient, delegation_id: str, reason: str) -> ConfigError:
    """The error for a token that could not be delivered, once its delegation is revoked."""
    shown = printable(delegation_id)
    try:
        broker.revoke_delegation(delegation_id)
    except VouchError as exc:
        return ConfigError(
            f"{reason}; revoking delegation {shown} failed too ({printable(exc.detail)}): "
            f"run `vouch delegate revoke {shown}`"
        )
    return ConfigError(
        f"{reason}; delegation {shown} was revoked, so no token is left live: "
        "choose another --out and delegate again"
    )


def show_grant(ctx: Context, grant: Grant, heading: str, *, why: str = "purpose") -> None:
    """The signed grant, field by field, on stderr (stdout may be a token file)."""
    models, ttl = grant.models, grant.ttl_s
    lines = [
        heading,
        f"  person:   {printable(grant.email)}",
        f"  agent:    {printable(grant.agent)}",
        f"  models:   {printable(models[0]) if models else '(none)'}",
        *(f"            {printable(m)}" for m in models[1:]),
        f"  lifetime: {format_duration(ttl)}, until about {when(time.time() + ttl)}",
    ]
    if grant.purpose:
        # Hard-wrapped and framed: no line of it can pass for a line of vouch's own.
        first, *rest = wrapped(grant.purpose)
        lines.append(f"  {why + ':':<9} {first}")
        lines.extend(f"{'':12}| {chunk}" for chunk in rest)
    if grant.max_sts_s:
        lines.append(f"  AWS credentials live at most {format_duration(grant.max_sts_s)}")
    if grant.rate:
        lines.append(f"  at most {grant.rate} exchanges per hour")
    if grant.budget:
        lines.append(f"  budget:   {printable(grant.budget)} (revoked once spent)")
    if grant.jkt:
        lines.append(f"  bound to the agent key {printable(grant.jkt)}")
        lines.append("            (its token is useless without that key)")
    else:
        lines.append("  key:      not bound (whoever holds the token can use it)")
    ctx.info("\n".join(lines))


def run_approve(ctx: Context) -> int:
    session = ctx.session()
    key = ctx.key()
    broker = ctx.client()
    proposal = broker.delegation_begin(request_code=ctx.args.user_code)
    grant = verified_grant(proposal)
    check_grant_matches(grant, {"email": session.email})
    heading = f"Agent request {ctx.args.user_code} (your key tap approves this):"
    show_grant(ctx, grant, heading, why="message")
    done = broker.delegation_complete(proposal.challenge_id, key.sign(proposal.options.public_key))
    record = done.delegation
    ctx.info(f"Approved: delegation {printable(record.id)}; the agent receives its token directly.")
    ctx.emit({"delegation": record, "request_id": done.request_id})
    return OK


def run_deny(ctx: Context) -> int:
    ctx.client().deny_request(ctx.args.user_code)
    ctx.info(f"Denied agent request {printable(ctx.args.user_code)}.")
    ctx.emit({"user_code": ctx.args.user_code, "status": "denied"})
    return OK


def run_requests(ctx: Context) -> int:
    pending = ctx.client().list_requests()
    now = int(time.time())
    blocks = [_request_block(r, now) for r in pending]
    ctx.emit({"requests": pending}, "\n\n".join(blocks) if blocks else "no pending requests")
    if blocks:
        ctx.info(
            "Approve only a code your own agent showed you: vouch delegate approve CODE\n"
            "Refuse anything else:                        vouch delegate deny CODE"
        )
    return OK


def _request_block(request: PendingRequest, now: int) -> str:
    models = list(request.models)
    age, left = format_duration(now - request.created_at), format_duration(request.expires_at - now)
    return "\n".join(
        [
            f"{printable(request.user_code)}  asked {age} ago from {printable(request.address)}"
            f" (expires in {left})",
            f"  agent:    {printable(request.agent)}",
            f"  models:   {printable(models[0]) if models else '(none)'}",
            *(f"            {printable(m)}" for m in models[1:]),
            f"  lifetime: {format_duration(request.ttl_s)}",
            f"  key:      {printable(request.jkt) if request.jkt else 'not bound'}",
            *([f"  budget:   {printable(request.budget)}"] if request.budget else []),
            f"  message (the agent's words, not the broker's): {_quoted(request.message)}",
        ]
    )


def _quoted(text: str) -> str:
    """`text` in double quotes, with quotes, backslashes and unprintables escaped, so it
    can neither end the quotation nor redraw the terminal."""
    return '"' + printable(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def state_of(record: Delegation, now: float) -> str:
    """active, revoked or expired (a broker that sends no state: from the record)."""
    if record.state == "revoked" or record.revoked_at:
        return "revoked"
    return "expired" if record.expires_at <= now else "active"


def run_list(ctx: Context) -> int:
    args, now = ctx.args, time.time()
    listed = ctx.client().list_delegations(everyone=args.everyone)
    shown = [d for d in listed if args.all or state_of(d, now) == "active"]
    for record in shown:
        record.state = state_of(record, now)
    if not shown:
        empty = "no delegations" if args.all else "no active delegations"
        ctx.emit({"delegations": shown}, empty)
        return OK
    who = f"{'PERSON':<28} " if args.everyone else ""
    header = f"{'ID':<22} {who}{'AGENT':<16} {'STATE':<8} {'UNTIL':<40} MODELS"
    rows = [_row(d, with_email=args.everyone) for d in shown]
    ctx.emit({"delegations": shown}, "\n".join([header, *rows]))
    return OK


_REVOKED_BY = {"agent": "its agent", "user": "its person", "credential": "its security key"}


def _row(record: Delegation, *, with_email: bool) -> str:
    who = f"{printable(record.email):<28} " if with_email else ""
    models = ",".join(printable(m) for m in record.models)
    # A revoked delegation has no time left: its UNTIL is only the end it was granted.
    revoked = record.state == "revoked" and record.expires_at
    until = (
        time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(record.expires_at))
        if revoked
        else when(record.expires_at)
    )
    row = (
        f"{printable(record.id):<22} {who}{printable(record.agent):<16} "
        f"{record.state or '':<8} {until:<40} {models}"
    )
    if record.budget:
        spent = printable(record.spent or "0")
        row += f"\n{'':<22} spent {spent} of its {printable(record.budget)} budget"
    if record.state != "revoked":
        return row
    what = _REVOKED_BY.get(record.revoked_handle or "", "this delegation")
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.revoked_at or 0))
    by = f" by {printable(record.revoked_by)}" if record.revoked_by else ""
    why = f": {_quoted(record.revoked_reason)}" if record.revoked_reason else ""
    at_text = f" at {at}" if record.revoked_at else ""
    return f"{row}\n{'':<22} revoked ({what}){at_text}{by}{why}"


def run_revoke(ctx: Context) -> int:
    wait = 0 if ctx.args.no_wait else AWS_WAIT_S
    client = ctx.client()
    record = until_confirmed(
        ctx, "the revocation", lambda: client.revoke_delegation(ctx.args.id, wait_s=wait)
    )
    ctx.info(
        f"Revoked {printable(record.id)} ({printable(record.agent)}); its next exchange is refused."
    )
    ctx.info(aws_line(record.aws_sessions))
    ctx.emit(record)
    return OK
