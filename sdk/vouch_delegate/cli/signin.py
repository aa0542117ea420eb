"""enroll, login, logout, status: a person and their security key."""

from __future__ import annotations

import argparse
from typing import Any

from vouch_delegate._errors import ConfigError
from vouch_delegate.cli import _keyring
from vouch_delegate.cli._context import Context, when
from vouch_delegate.cli._exit import NOT_SIGNED_IN, OK, NotSignedIn
from vouch_delegate.cli._store import KEYRING, SavedSession
from vouch_delegate.cli._text import printable


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    enroll = commands.add_parser(
        "enroll",
        parents=[common],
        help="register your security key with an invite code",
        description="Register your security key with the broker, using an admin's invite code.",
        epilog="example: vouch enroll --server https://vouch.example.com "
        "--email alice@example.com --code ABCD-EFGH-IJKL-MNOP-QRST",
    )
    enroll.add_argument("--email", required=True, help="your email (the invite's address)")
    enroll.add_argument("--code", required=True, help="the one-time invite code")
    enroll.set_defaults(handler=run_enroll)
    _register_session_commands(commands, common)


def _register_session_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    login = commands.add_parser(
        "login",
        parents=[common],
        help="sign in with your security key (a session for 8 h)",
        description="Sign in with a key tap; the session is saved (0600) for later commands.",
    )
    login.add_argument("--email", help="your email (default: the one saved at enroll/login)")
    login.set_defaults(handler=run_login)

    logout = commands.add_parser("logout", parents=[common], help="forget the saved session")
    logout.set_defaults(handler=run_logout)

    status = commands.add_parser(
        "status", parents=[common], help="show who is signed in, where, and until when"
    )
    status.add_argument(
        "--show-token", action="store_true", help="also print the session token (careful)"
    )
    status.set_defaults(handler=run_status)


def run_enroll(ctx: Context) -> int:
    key = ctx.key()
    broker = ctx.client(signed_in=False)
    ceremony = broker.enroll_begin(ctx.args.email, ctx.args.code)
    credential = key.register(ceremony.options.public_key)
    done = broker.enroll_complete(ceremony.challenge_id, credential)
    ctx.store.save(SavedSession(server=ctx.server, email=done.email or ctx.args.email))
    ctx.info(
        f"Enrolled key {printable(done.credential)} for {printable(done.email)} at {ctx.server}."
    )
    ctx.info("Next: vouch login")
    ctx.emit(done)
    return OK


def run_login(ctx: Context) -> int:
    saved = ctx.saved if ctx.saved and ctx.saved.server == ctx.server else None
    email = ctx.args.email or (saved.email if saved else None)
    key = ctx.key()
    broker = ctx.client(signed_in=False)
    ceremony = broker.login_begin(email)
    assertion = key.sign(ceremony.options.public_key)
    done = broker.login_complete(ceremony.challenge_id, assertion)
    session = SavedSession(ctx.server, done.email, done.token, done.expires_at)
    ctx.store.save(session)
    who = printable(done.email)
    ctx.info(f"Signed in to {ctx.server} as {who} until {when(session.expires_at)}.")
    ctx.emit({"server": ctx.server, "email": done.email, "expires_at": session.expires_at})
    return OK


def run_logout(ctx: Context) -> int:
    saved = ctx.saved
    if saved is not None and saved.token:
        # Server and email stay so that `vouch login` needs no arguments next time.
        ctx.store.save(saved.without_token())
        ctx.info(f"Signed out of {saved.server}.")
    else:
        ctx.info("Not signed in.")
    ctx.emit({"signed_in": False})
    return OK


def run_status(ctx: Context) -> int:
    saved = ctx.saved
    report: dict[str, object] = {
        "server": None,
        "email": saved.email if saved else None,
        "signed_in": False,
        "expires_at": None,
    }
    try:
        report["server"] = ctx.server
        session = ctx.session()
    except (NotSignedIn, ConfigError) as exc:
        ctx.emit(report, f"not signed in: {exc.detail}")
        return NOT_SIGNED_IN
    listed = ctx.client().list_delegations()
    report.update(signed_in=True, email=session.email, expires_at=session.expires_at)
    report["active_delegations"] = len(listed)
    report["session_store"] = session.kept_in
    lines = [
        f"server:      {ctx.server}",
        f"signed in:   {printable(session.email)}",
        f"session:     until {when(session.expires_at)}",
        f"kept in:     {_kept_in(ctx, session)}",
        f"delegations: {report['active_delegations']} active",
    ]
    if ctx.args.show_token:
        report["token"] = session.token
        lines.append(f"token:       {session.token}")
    ctx.emit(report, "\n".join(lines))
    return OK


def _kept_in(ctx: Context, session: SavedSession) -> str:
    """Where the session token is, for people: the OS keyring, or the file and why."""
    backend = _keyring.usable()
    if session.kept_in == KEYRING and backend is not None:
        return f"the OS keyring ({_keyring.name(backend)})"
    why = "no usable OS keyring here" if backend is None else "the keyring refused it"
    return f"{ctx.store.path} (mode 0600; {why})"
