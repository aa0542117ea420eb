"""admin people | invite | invites | cancel-invite | reinstate | revoke | audit: for the people the
org policy names as admins. Inviting and reinstating raise someone's power: each takes the
admin's key tap over that exact action; the rest act on the session alone."""

from __future__ import annotations

import argparse
import json
import time
import unicodedata
from typing import Any

from vouch_delegate._action import describe, verified_action
from vouch_delegate._errors import ConfigError
from vouch_delegate._grant import parse_duration
from vouch_delegate._messages import ActionProposal, AuditValue, Invite, PersonInfo
from vouch_delegate.cli._context import Context, when
from vouch_delegate.cli._exit import OK
from vouch_delegate.cli._retry import until_confirmed
from vouch_delegate.cli._text import AWS_WAIT_S, aws_line, printable

REVOKE_EPILOG = """examples:
  vouch admin revoke --delegation dlg_abc123 --reason "leaked in a log"
  vouch admin revoke --agent agent.researcher.alice@example.com
  vouch admin revoke --user mallory@example.com       (and disables their keys)
  vouch admin revoke --credential 3f9a...               (one security key)

Revocations are enforced on the next request, on every broker replica. Revoking a
delegation, person or key that is already revoked changes nothing: the answer says when it
was revoked, and the audit trail records the attempt as `already_revoked`."""

AUDIT_EPILOG = """examples:
  vouch admin audit                                  the 50 newest events
  vouch admin audit --since 1h                       the last hour
  vouch admin audit --person alice@example.com       by, about or for alice
  vouch admin audit --agent researcher --since 1d    one agent name, any person's
  vouch admin audit --agent agent.researcher.alice@example.com
  vouch admin audit --limit 200 --before 1795665437366-0    an older page
  vouch admin audit --json | jq '.events[] | select(.event == "exchange_refused")'

Newest first. When more events match than were shown, the last line says how to get the
next page (--before, or `next` in the JSON)."""


PEOPLE_EPILOG = """examples:
  vouch admin people                                 the first 100, by email
  vouch admin people --after carol@example.com       the page after carol
  vouch admin people --json | jq -r '.people[] | select(.state == "revoked") | .email'

One line per registered person: their state, since when (revoked: when it happened; active:
when their first key was registered), and their keys by state. A person's keys and
delegations, and revoking or reinstating them, are on the admin pages (/admin/people)."""


INVITE_EPILOG = """examples:
  vouch admin invite bob@example.com
  vouch admin invite --email bob@example.com --json    (the invite, code included, as JSON)

The action is shown before your key asks for a tap; the tap signs exactly that invite.
The code is printed once on stdout: give it to them privately. They run
  vouch enroll --server URL --email bob@example.com
and type it at the prompt. `vouch admin invites` lists unused invites."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    admin = commands.add_parser(
        "admin", parents=[common], help="people, invites, reinstatement, revocation, audit"
    )
    actions = admin.add_subparsers(
        title="subcommands",
        metavar="{people,invite,invites,cancel-invite,reinstate,revoke,audit}",
    )
    actions.required = True
    people = actions.add_parser(
        "people",
        parents=[common],
        help="registered people, their state and keys",
        epilog=PEOPLE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    people.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (1-500)")
    people.add_argument("--after", metavar="EMAIL", help="from after this email (a later page)")
    people.set_defaults(handler=run_people)
    invite = actions.add_parser(
        "invite",
        parents=[common],
        help="a one-time enrollment code for a person (a key tap)",
        epilog=INVITE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _email_argument(invite, "who may enroll with the code")
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
    _email_argument(reinstate, "the revoked person")
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
    audit = actions.add_parser(
        "audit",
        parents=[common],
        help="recent audit events",
        epilog=AUDIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    audit.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (1-1000)")
    audit.add_argument("--since", metavar="DURATION", help="only this recent: 30m, 2h, 1d")
    audit.add_argument("--person", metavar="EMAIL", help="events by, about or for this person")
    audit.add_argument("--agent", metavar="SUB|NAME", help="events of an agent (sub or name)")
    audit.add_argument("--before", metavar="ID", help="from this event id back (a later page)")
    audit.set_defaults(handler=run_audit)


def _email_argument(parser: argparse.ArgumentParser, text: str) -> None:
    """EMAIL, or --email EMAIL as `vouch enroll` spells it: either is accepted."""
    parser.add_argument("email", nargs="?", metavar="EMAIL", help=text)
    parser.add_argument("--email", dest="email_option", metavar="EMAIL", help="the same")


def _email(ctx: Context, command: str) -> str:
    """The email given as EMAIL or --email EMAIL.

    Raises: ConfigError when neither or two different ones are given.
    """
    given: set[str] = {e for e in (ctx.args.email, ctx.args.email_option) if e}
    if len(given) != 1:
        what = "one email, not two" if given else "an email"
        raise ConfigError(f"vouch admin {command} needs {what}: EMAIL or --email EMAIL")
    return given.pop()


def _tap(ctx: Context, proposal: ActionProposal, name: str, email: str) -> dict[str, object]:
    """Check that the proposal's challenge commits to the action asked for (the email as
    the broker folds it: NFKC, lower case), show it, and tap."""
    session = ctx.session()
    asked = unicodedata.normalize("NFKC", email.strip()).lower()
    action = verified_action(proposal, action=name, by=session.email or "", email=asked)
    key = ctx.key()
    ctx.info(f"You are about to {describe(action)} (your key tap signs exactly this).")
    return key.sign(proposal.options.public_key)


def run_people(ctx: Context) -> int:
    page = ctx.client().people_page(limit=ctx.args.limit, after=ctx.args.after)
    lines = [_person_row(p) for p in page.people] or ["no registered people"]
    if page.next is not None:
        lines.append(f"(more: add --after {printable(page.next)})")
    ctx.emit(page, "\n".join(lines))
    return OK


def _person_row(person: PersonInfo) -> str:
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(person.since)) if person.since else "-"
    keys = ", ".join(f"{n} {printable(state)}" for state, n in sorted(person.keys.items()) if n)
    state = printable(person.state)
    return f"{printable(person.email):<32} {state:<7} since {since:<16} keys: {keys or 'none'}"


def run_invite(ctx: Context) -> int:
    asked = _email(ctx, "invite")
    broker = ctx.client()
    proposal = broker.invite_begin(asked)
    invite = broker.invite_complete(proposal.challenge_id, _tap(ctx, proposal, "invite", asked))
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
    email = _email(ctx, "reinstate")
    proposal = broker.reinstate_begin(email)
    done = broker.reinstate_complete(proposal.challenge_id, _tap(ctx, proposal, "reinstate", email))
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
    what = f"{printable(done.handle)} {printable(done.value)}"
    if done.already_revoked:
        at = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(done.revoked_at))
        ctx.info(f"{what} was already revoked at {at}; nothing changed.")
    else:
        ctx.info(f"Revoked {what}; enforced from the next request.")
    ctx.info(aws_line(done.aws_sessions))
    ctx.emit(done)
    return OK


def run_audit(ctx: Context) -> int:
    args = ctx.args
    page = ctx.client().audit_page(
        limit=args.limit,
        before=args.before,
        since=time.time() - parse_duration(args.since) if args.since else None,
        person=args.person,
        agent=args.agent,
    )
    lines = [_line(e) for e in page.events] or ["no audit events"]
    if page.next is not None:
        lines.append(f"(more: add --before {page.next})")
    ctx.emit(page, "\n".join(lines))
    return OK


def _line(event: dict[str, AuditValue]) -> str:
    ts = event.get("ts", 0)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(_number(ts)))
    rest = {k: v for k, v in event.items() if k not in {"id", "ts", "event", "actor"}}
    detail = " ".join(f"{printable(k)}={_shown(v)}" for k, v in rest.items())
    kind, actor = printable(event.get("event", "?")), printable(event.get("actor", "-"))
    return f"{stamp}  {kind:<16} {actor:<28} {detail}"


def _number(value: AuditValue) -> float:
    """A time as a number (older brokers sent it as text)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _shown(value: AuditValue) -> str:
    """Text as is (quoted when it has spaces); numbers, flags and lists as JSON."""
    if isinstance(value, str):
        return json.dumps(value) if " " in value else printable(value)
    return printable(json.dumps(value))
