"""admin invite | invites | cancel-invite | reinstate | revoke | audit: for the people the
org policy names as admins. Inviting and reinstating raise someone's power: each takes the
admin's key tap over that exact action; the rest act on the session alone."""

from __future__ import annotations

import argparse
import json
import time
import unicodedata
from typing import Any

from vouch_delegate._action import describe, verified_action
from vouch_delegate._messages import ActionProposal, Invite
from vouch_delegate.cli._context import Context, when
from vouch_delegate.cli._exit import OK
from vouch_delegate.cli._retry import until_confirmed
from vouch_delegate.cli._text import AWS_WAIT_S, aws_line, printable

REVOKE_EPILOG = """examples:
  vouch admin revoke --delegation dlg_abc123 --reason "leaked in a log"
  vouch admin revoke --agent agent.researcher.alice@example.com
  vouch admin revoke --user mallory@example.com       (and disables their keys)
  vouch admin revoke --credential 3f9a...               (one security key)

Revocations are enforced on the next request, on every broker replica."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    admin = commands.add_parser(
        "admin", parents=[common], help="invites, reinstatement, revocation, audit"
    )
    actions = admin.add_subparsers(
        title="subcommands",
        metavar="{invite,invites,cancel-invite,reinstate,revoke,audit}",
    )
    actions.required = True
    invite = actions.add_parser(
        "invite", parents=[common], help="a one-time enrollment code for a person (a key tap)"
    )
    invite.add_argument("email", help="who may enroll with the code")
    invite.set_defaults(handler=run_invite)
    invites = actions.add_parser("invites", parents=[common], help="unused invites")
    invites.set_defaults(handler=run_invites)
    cancel = actions.add_parser(
        "cancel-invite", parents=[common], help="cancel an unused invite by its id"
    )
    cancel.add_argument("id", help="the invite id (inv_..., from `vouch admin invites`)")
    cancel.set_defaults(handler=run_cancel_invite)
    reinstate = actions.add_parser(
        "reinstate",
        parents=[common],
        help="let a revoked person back in (a key tap); they enroll a new key with an invite",
    )
    reinstate.add_argument("email", help="the revoked person")
    reinstate.set_defaults(handler=run_reinstate)
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
    revoke.add_argument(
        "--no-wait",
        action="store_true",
        help="answer at once, without waiting (up to 10 s) for AWS to deny live sessions",
    )
    revoke.set_defaults(handler=run_revoke)
    audit = actions.add_parser("audit", parents=[common], help="recent audit events")
    audit.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (1-1000)")
    audit.set_defaults(handler=run_audit)


def _tap(ctx: Context, proposal: ActionProposal, name: str) -> dict[str, object]:
    """Check that the proposal's challenge commits to the action asked for (the email as
    the broker folds it: NFKC, lower case), show it, and tap."""
    session = ctx.session()
    asked = unicodedata.normalize("NFKC", ctx.args.email.strip()).lower()
    action = verified_action(proposal, action=name, by=session.email or "", email=asked)
    key = ctx.key()
    ctx.info(f"You are about to {describe(action)} (your key tap signs exactly this).")
    return key.sign(proposal.options.public_key)


def run_invite(ctx: Context) -> int:
    broker = ctx.client()
    proposal = broker.invite_begin(ctx.args.email)
    invite = broker.invite_complete(proposal.challenge_id, _tap(ctx, proposal, "invite"))
    hours = invite.expires_in // 3600
    email = printable(invite.email)
    ctx.info(f"Invite {printable(invite.id)} for {email} (valid {hours} h, single use).")
    ctx.info("Give them the code privately (it is printed once, below). They run:")
    ctx.info(f"  vouch enroll --server {ctx.server} --email {email}")
    ctx.info("and type the code at the prompt (or pass it with --code-file FILE).")
    ctx.emit(invite, invite.code)
    return OK


def run_invites(ctx: Context) -> int:
    invites = ctx.client().list_invites()
    rows = [_invite_row(i) for i in invites]
    ctx.emit({"invites": invites}, "\n".join(rows) if rows else "no unused invites")
    return OK


def _invite_row(invite: Invite) -> str:
    state = "IN USE" if invite.in_use else "unused"
    return (
        f"{printable(invite.id)}  {printable(invite.email):<28} "
        f"by {printable(invite.created_by):<24} {state:<6} until {when(invite.expires_at)}"
    )


def run_cancel_invite(ctx: Context) -> int:
    invite = ctx.client().cancel_invite(ctx.args.id)
    ctx.info(
        f"Cancelled invite {printable(invite.id)} for {printable(invite.email)}; "
        "its code enrolls nobody now."
    )
    ctx.emit(invite)
    return OK


def run_reinstate(ctx: Context) -> int:
    broker = ctx.client()
    proposal = broker.reinstate_begin(ctx.args.email)
    done = broker.reinstate_complete(proposal.challenge_id, _tap(ctx, proposal, "reinstate"))
    email = printable(done.email)
    ctx.info(
        f"Reinstated {email}. Their old keys stay revoked: invite them to enroll a new"
        f" one (vouch admin invite {email})."
    )
    ctx.emit(done)
    return OK


def run_revoke(ctx: Context) -> int:
    args = ctx.args
    client = ctx.client()
    done = until_confirmed(
        ctx,
        "the revocation",
        lambda: client.create_revocation(
            delegation=args.delegation or None,
            agent=args.agent or None,
            user=args.user or None,
            credential=args.credential or None,
            reason=args.reason,
            wait_s=0 if args.no_wait else AWS_WAIT_S,
        ),
    )
    ctx.info(
        f"Revoked {printable(done.handle)} {printable(done.value)}; enforced from the next request."
    )
    ctx.info(aws_line(done.aws_sessions))
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
