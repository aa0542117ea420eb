"""admin invite | revoke | audit: for the people the org policy names as admins."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from vouch_delegate.cli._context import Context
from vouch_delegate.cli._exit import OK
from vouch_delegate.cli._text import printable

REVOKE_EPILOG = """examples:
  vouch admin revoke --delegation dlg_abc123 --reason "leaked in a log"
  vouch admin revoke --agent agent.researcher.alice@example.com
  vouch admin revoke --user mallory@example.com       (and disables their keys)
  vouch admin revoke --credential 3f9a...               (one security key)

Revocations are enforced on the next request, on every broker replica."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    admin = commands.add_parser("admin", parents=[common], help="invites, revocation, audit")
    actions = admin.add_subparsers(title="subcommands", metavar="{invite,revoke,audit}")
    actions.required = True
    invite = actions.add_parser(
        "invite", parents=[common], help="a one-time enrollment code for a person"
    )
    invite.add_argument("email", help="who may enroll with the code")
    invite.set_defaults(handler=run_invite)
    revoke = actions.add_parser(
        "revoke",
        parents=[common],
        help="revoke a delegation, an agent, a person or a key",
        epilog=REVOKE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    handle = revoke.add_mutually_exclusive_group(required=True)
    handle.add_argument("--delegation", metavar="ID", help="one delegation (dlg_...)")
    handle.add_argument("--agent", metavar="SUB", help="every token of an agent sub")
    handle.add_argument("--user", metavar="EMAIL", help="a person: sessions, delegations, keys")
    handle.add_argument("--credential", metavar="ID", help="one security key (its hash)")
    revoke.add_argument("--reason", default="", help="recorded in the audit trail")
    revoke.set_defaults(handler=run_revoke)
    audit = actions.add_parser("audit", parents=[common], help="recent audit events")
    audit.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (1-1000)")
    audit.set_defaults(handler=run_audit)


def run_invite(ctx: Context) -> int:
    invite = ctx.client().create_invite(ctx.args.email)
    hours = invite.expires_in // 3600
    email, code = printable(invite.email), printable(invite.code)
    ctx.info(f"Invite for {email} (valid {hours} h, single use). They run:")
    ctx.info(f"  vouch enroll --server {ctx.server} --email {email} --code {code}")
    ctx.emit(invite, invite.code)
    return OK


def run_revoke(ctx: Context) -> int:
    args = ctx.args
    done = ctx.client().create_revocation(
        delegation=args.delegation or None,
        agent=args.agent or None,
        user=args.user or None,
        credential=args.credential or None,
        reason=args.reason,
    )
    ctx.info(
        f"Revoked {printable(done.handle)} {printable(done.value)}; enforced from the next request."
    )
    ctx.emit(done)
    return OK


def run_audit(ctx: Context) -> int:
    events = ctx.client().read_audit(limit=ctx.args.limit)
    ctx.emit({"events": events}, "\n".join(_line(e) for e in events) or "no audit events")
    return OK


def _line(event: dict[str, str]) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(event.get("ts", 0))))
    rest = {k: v for k, v in event.items() if k not in {"id", "ts", "event", "actor"}}
    detail = " ".join(
        f"{printable(k)}={json.dumps(v) if ' ' in str(v) else printable(v)}"
        for k, v in rest.items()
    )
    kind, actor = printable(event.get("event", "?")), printable(event.get("actor", "-"))
    return f"{stamp}  {kind:<16} {actor:<28} {detail}"
