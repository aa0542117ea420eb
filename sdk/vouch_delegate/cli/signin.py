"""enroll, login, logout, status: a person and their security keys."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import Any

from vouch_delegate._action import describe, verified_action
from vouch_delegate._errors import (
    BrokerUnavailable,
    ConfigError,
    NetworkError,
    NotSignedIn,
    TokenRevoked,
)
from vouch_delegate._messages import KeyInfo
from vouch_delegate._token import SERVER_ENV
from vouch_delegate.cli import _keyring
from vouch_delegate.cli._context import Context, when
from vouch_delegate.cli._exit import NOT_SIGNED_IN, OK
from vouch_delegate.cli._own_credentials import OwnCredentialCache
from vouch_delegate.cli._store import KEYRING, SavedSession
from vouch_delegate.cli._text import printable
from vouch_delegate.cli.delegate import state_of

CODE_ON_COMMAND_LINE = (
    "warning: --code puts the invite code in the process list, where every local user can"
    " read it; prefer the prompt, --code-file FILE or --code-file - (stdin)"
)
ENROLL_EPILOG = """examples:
  vouch enroll --server https://vouch.example.com --email alice@example.com
      (asks for the invite code without echoing it)
  vouch enroll --email alice@example.com --code-file invite.txt
  echo "$CODE" | vouch enroll --email alice@example.com --code-file -
  vouch enroll --add-key --authenticator usb --approve-with soft:old-key.json
      (another key for your account: a registered key of yours approves it with a tap)"""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    enroll = commands.add_parser(
        "enroll",
        parents=[common],
        help="register a security key (with an invite code, or approved by your own key)",
        description="Register your security key with the broker, with an admin's invite "
        "code; or add another key to your account, approved by a tap of a key you registered.",
        epilog=ENROLL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    enroll.add_argument("--email", help="your email (the invite's address)")
    source = enroll.add_mutually_exclusive_group()
    source.add_argument(
        "--code-file", metavar="FILE", help="read the invite code from FILE ('-': stdin)"
    )
    source.add_argument("--code", help="the invite code (visible to other local users: avoid)")
    source.add_argument(
        "--add-key",
        action="store_true",
        help="add a key to your signed-in account; a registered key approves (no invite)",
    )
    enroll.add_argument(
        "--approve-with",
        metavar="usb|soft:PATH",
        default="usb",
        help="with --add-key: the registered key that approves (default: usb)",
    )
    enroll.set_defaults(handler=run_enroll)
    _register_session_commands(commands, common)


LOGIN_EPILOG = """examples:
  vouch login                    (the broker and email saved at enroll or the last login)
  vouch login --server https://vouch.example.com --email alice@example.com
  vouch login --authenticator soft:demo-key.json    (a software key: tests and demos only)

The key asks for its PIN on the terminal; in a script without one, set VOUCH_PIN.
The session lasts as long as the broker allows (8 h by default); `vouch logout` ends it."""
STATUS_EPILOG = """examples:
  vouch status                   who, which broker, until when, where the session is kept,
                                 active delegations and every key of yours
  vouch status --json            the same as JSON
  vouch status --server https://vouch.example.com

Exit code 2 when not signed in (or signed out, or expired): scripts can test it."""


def _register_session_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    login = commands.add_parser(
        "login",
        parents=[common],
        help="sign in with your security key (a session for 8 h)",
        description="Sign in with a key tap; the session is saved (0600) for later commands.",
        epilog=LOGIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    login.add_argument("--email", help="your email (default: the one saved at enroll/login)")
    login.set_defaults(handler=run_login)

    logout = commands.add_parser(
        "logout", parents=[common], help="end the session at the broker and forget it"
    )
    logout.set_defaults(handler=run_logout)

    status = commands.add_parser(
        "status",
        parents=[common],
        help="show who is signed in, where, until when, and your keys",
        epilog=STATUS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument(
        "--show-token", action="store_true", help="also print the session token (careful)"
    )
    status.set_defaults(handler=run_status)


def run_enroll(ctx: Context) -> int:
    if ctx.args.add_key:
        return _add_key(ctx)
    if not ctx.args.email:
        raise ConfigError("vouch enroll needs --email EMAIL (or --add-key when signed in)")
    code = _invite_code(ctx)
    key = ctx.key()
    broker = ctx.client(signed_in=False)
    ceremony = broker.enroll_begin(ctx.args.email, code)
    credential = key.register(ceremony.options.public_key)
    done = broker.enroll_complete(ceremony.challenge_id, credential)
    ctx.store.save(SavedSession(server=ctx.server, email=done.email or ctx.args.email))
    ctx.info(
        f"Enrolled key {printable(done.credential)} for {printable(done.email)} at {ctx.server}."
    )
    ctx.info("Next: vouch login")
    ctx.emit(done)
    return OK


def _invite_code(ctx: Context) -> str:
    """The invite code: from --code-file, --code (with a warning), else a hidden prompt or
    the first line of stdin.

    Raises: ConfigError when there is none.
    """
    args = ctx.args
    if args.code_file:
        try:
            text = sys.stdin.read() if args.code_file == "-" else Path(args.code_file).read_text()
        except OSError as exc:
            raise ConfigError(f"--code-file: cannot read {args.code_file} ({exc})") from None
        code = text.strip().splitlines()[0].strip() if text.strip() else ""
    elif args.code:
        ctx.info(CODE_ON_COMMAND_LINE)
        code = args.code.strip()
    elif sys.stdin.isatty():
        code = getpass.getpass("Invite code (not shown): ", stream=ctx.err).strip()
    else:
        code = sys.stdin.readline().strip()
    if not code:
        raise ConfigError("no invite code: type it at the prompt, or use --code-file FILE")
    return code


def _add_key(ctx: Context) -> int:
    """Add a key to the signed-in account: a registered key taps, then the new key registers."""
    session = ctx.session()
    email = session.email or ""
    if ctx.args.email and ctx.args.email.strip().lower() != email:
        raise ConfigError(f"--add-key adds a key to your own account ({email}), not another")
    broker = ctx.client()
    ceremony = broker.enroll_begin(email)
    if ceremony.approval is None:
        raise ConfigError("the broker did not ask for an approving tap; refusing to go on")
    action = verified_action(
        ceremony.approval,
        action="add-key",
        by=email,
        email=email,
        enrollment=ceremony.options.public_key.get("challenge", ""),
    )
    ctx.info(f"Approve with a key you registered before: {describe(action)}.")
    approval = ctx.key(ctx.args.approve_with).sign(ceremony.approval.options.public_key)
    ctx.info("Now the new key.")
    credential = ctx.key().register(ceremony.options.public_key)
    done = broker.enroll_complete(ceremony.challenge_id, credential, approval)
    ctx.info(
        f"Added key {printable(done.credential)} to {printable(done.email)}; "
        "`vouch status` lists your keys."
    )
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
    """End the session at the broker (so a copy of it is worthless), then forget it here,
    with the person's own AWS credentials cached for `vouch credential aws`."""
    saved = ctx.saved
    if saved is not None:
        OwnCredentialCache.of(ctx.env, saved.server, saved.email or "").clear()
    if saved is None or not saved.token:
        ctx.info("Not signed in.")
        ctx.emit({"signed_in": False, "revoked": False})
        return OK
    revoked = True
    try:
        if saved.signed_in():
            ctx.client().logout()
    except (NotSignedIn, TokenRevoked):
        pass  # the broker already refuses it: ended, or revoked by an admin
    except (NetworkError, BrokerUnavailable) as exc:
        revoked = False
        ctx.info(
            f"warning: could not reach {saved.server} ({printable(exc.detail)}); the session is"
            f" forgotten here but stays valid at the broker until {when(saved.expires_at)}:"
            " run `vouch logout` again when the broker is back"
        )
    # Server and email stay so that `vouch login` needs no arguments next time.
    ctx.store.save(saved.signed_out())
    if revoked:
        ctx.info(f"Signed out of {saved.server}; the session no longer works anywhere.")
    ctx.emit({"signed_in": False, "revoked": revoked})
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
    except ConfigError as exc:
        if ctx.args.server or ctx.env.get(SERVER_ENV, "").strip():
            raise  # a broker URL given but unusable is configuration (6), not a sign-in (2)
        ctx.emit(report, f"not signed in: {exc.detail}")
        return NOT_SIGNED_IN
    except NotSignedIn as exc:
        if saved is not None and saved.signed_out_at and not saved.token:
            report["signed_out_at"] = saved.signed_out_at
            ctx.emit(report, f"signed out of {saved.server} at {_stamp(saved.signed_out_at)}")
        else:
            ctx.emit(report, f"not signed in: {exc.detail}")
        return NOT_SIGNED_IN
    broker = ctx.client()
    listed = broker.list_delegations()
    keys = broker.list_keys()
    report.update(signed_in=True, email=session.email, expires_at=session.expires_at)
    now = time.time()
    report["active_delegations"] = sum(1 for d in listed if state_of(d, now) == "active")
    report["session_store"] = session.kept_in
    report["keys"] = keys
    lines = [
        f"server:      {ctx.server}",
        f"signed in:   {printable(session.email)}",
        f"session:     until {when(session.expires_at)}",
        f"kept in:     {_kept_in(ctx, session)}",
        f"delegations: {report['active_delegations']} active",
        f"keys:        {len(keys)} (check that you added every one)",
        *(f"  {_key_line(k)}" for k in keys),
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


def _key_line(key: KeyInfo) -> str:
    approver = printable(key.approved_by)
    how = {"invite": "with an invite", "key": f"approved by key {approver}"}.get(
        key.via, "before this was recorded"
    )
    kind = "SOFTWARE key" if key.software else "key"
    mark = "" if key.state == "active" else f" [{printable(key.state.upper())}]"
    return f"{kind} {printable(key.cid)}{mark}: added {_stamp(key.added_at)}, {how}"


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))
