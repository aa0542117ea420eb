"""`vouch-broker demo` (make demo): the whole story, step by step, checked as it goes.

It starts its own dev stack on free ports (redis-server, the AWS emulator, the broker), then
plays a person with a software key through the real `vouch` CLI: invite and enroll, login,
use Bedrock themselves (their own credentials, through the people role), delegate two
models to an agent bound to the agent's own key (DPoP), exchange, show a copy of the token
without the key refused, check one allowed and one denied model with the IAM evaluator,
list, revoke, and show the next exchange refused; then write Bedrock's invocation log
records for the agent's session into the emulator's CloudWatch Logs (as Bedrock would), show
the usage table, delegate again with a small --budget, spend past it, and show the broker
revoke the delegation and refuse the next exchange with budget-exceeded. Commands are
printed as they could be pasted into a shell. Any step that misbehaves ends the demo with a
non-zero exit, so CI runs it as a smoke test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import uvicorn

from broker.app import create_app
from broker.invites import invite_from_host
from broker.logs import configure
from broker.services import load_policy
from broker.settings import Settings, log_deprecations
from policies import AwsAccount, Catalog, Outcome, Request, compile_session_policy, evaluate
from policies.invocation_log import STREAM
from policies.session_policy import aws_time, model_arn, profile_arn
from vouch_devtools.dev import DevOptions, dev_settings, dev_stack

MODELS = ("us.claude-haiku-4-5", "us.claude-sonnet-4-5")
DENIED = "us.claude-opus-4-5"
BROAD_ROLE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}],
}


class DemoFailed(RuntimeError):
    """A step did not do what the story says."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Narrator:
    """Prints each step and each command as a person would type it."""

    env: dict[str, str]
    step: int = 0
    log: list[str] = field(default_factory=list)

    def say(self, title: str, text: str = "") -> None:
        self.step += 1
        print(f"\n== {self.step}. {title}", flush=True)
        if text:
            print(text, flush=True)

    def vouch(self, *args: str, expect: int = 0, stdin: str = "", show: bool = False) -> str:
        """Run `vouch ARGS` as printed; `show` prints its stdout too (else only stderr, which
        says what happened, is shown: stdout is for the next command or for checks)."""
        print(f"$ {shlex.join(['vouch', *args])}", flush=True)
        done = subprocess.run(  # noqa: S603 - this interpreter, our own CLI
            [sys.executable, "-m", "vouch_delegate.cli", *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # The software key's loud banner is shown once, at the start, not at every tap.
        shown = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("!!"))
        if shown.strip():
            print(_indent(shown), flush=True)
        if show and done.stdout.strip():
            print(_indent(done.stdout), flush=True)
        if done.returncode != expect:
            raise DemoFailed(f"`vouch {args[0]}` exited {done.returncode}, expected {expect}")
        return done.stdout

    def quiet(self, *args: str) -> str:
        """`vouch ARGS`, not shown (waiting for something): its stdout."""
        done = subprocess.run(  # noqa: S603 - this interpreter, our own CLI
            [sys.executable, "-m", "vouch_delegate.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout


def _indent(text: str) -> str:
    return "\n".join(f"   {line}" for line in text.rstrip().splitlines())


@contextmanager
def serving(settings: Settings, port: int) -> Iterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise DemoFailed("the broker did not start")
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def story(settings: Settings, work: Path, narrator: Narrator) -> None:
    catalog, org = load_policy(settings)
    admin = sorted(org.admins)[0]
    code = invite_from_host(settings.redis_url, admin, ttl_s=settings.invite_ttl_s)
    invite = shlex.join(["vouch-broker", "invite", admin])
    narrator.say("An admin invites a person", f"$ {invite}\n   {code}")
    narrator.say(
        "The person registers their key (tap + PIN)",
        "   (a SOFTWARE authenticator keeps its key in a file: for demos only, not hardware)",
    )
    # The code goes in on stdin (a person would type it at the prompt): on the command line
    # every local user could read it in the process list.
    print("   (the invite code is typed at the prompt; here it is piped in)", flush=True)
    narrator.vouch("enroll", "--email", admin, "--code-file", "-", stdin=code + "\n")
    narrator.say("Login: a fresh tap gives an 8 h human session")
    narrator.vouch("login")
    show_own_use(narrator, settings, org.aws, admin)
    token_file, key_file = work / "agent.jwt", work / "agent.key"
    narrator.say("The agent makes its own key (0600); a token bound to it is useless without it")
    thumbprint = narrator.vouch("agent-key", "create", "--out", str(key_file)).strip()
    print(f"   {thumbprint}", flush=True)
    narrator.say(
        "Delegate two models to that agent, bound to its key: the broker shows the exact"
        " grant, key included, and the tap signs it"
    )
    narrator.vouch(
        "delegate",
        "--agent",
        "demo",
        *[a for m in MODELS for a in ("--model", m)],
        "--ttl",
        "1h",
        "--bind-key",
        thumbprint,
        "--purpose",
        "vouch demo",
        "--out",
        str(token_file),
    )
    claims = _claims(token_file.read_text().strip())
    policy = compile_session_policy(
        claims["models"],
        catalog,
        region=org.aws.region,
        account_id=org.aws.account_id,
        expires_at=claims["exp"],
    )
    narrator.say(
        "The session policy STS will receive (only these models, until the delegation ends)",
        _indent(json.dumps(json.loads(policy), indent=2)),
    )
    if claims.get("cnf") != {"jkt": thumbprint}:
        raise DemoFailed("the agent token is not bound to the agent's key")
    narrator.say(
        "The agent exchanges its token for AWS credentials (with a fresh proof of its key)"
    )
    agent = ("--token-file", str(token_file), "--key-file", str(key_file))
    doc = json.loads(narrator.vouch("credential", "aws", *agent))
    print(f"   AccessKeyId {doc['AccessKeyId'][:4]}…  expires {doc['Expiration']}")
    show_stolen_copy(narrator, settings, token_file)
    narrator.say("What those credentials may call (IAM evaluation: role ∩ session policy)")
    now, ended = time.time(), claims["exp"]
    for name, at, want in (
        (MODELS[0], now, Outcome.ALLOW),
        (DENIED, now, Outcome.IMPLICIT_DENY),
        (MODELS[0], ended, Outcome.IMPLICIT_DENY),
    ):
        outcome = _invoke(policy, catalog.resolve(name), catalog, org.aws, at)
        when = "now" if at == now else f"at {aws_time(ended)}, when the delegation ends"
        print(f"   bedrock:InvokeModel {name} {when}: {outcome.value}")
        if outcome is not want:
            raise DemoFailed(f"{name} {when}: expected {want.value}, got {outcome.value}")
    dlg = claims["dlg"]
    narrator.say("The person's delegations: the agent's is active")
    _expect_row(narrator.vouch("delegate", "list", show=True), dlg, "active")
    narrator.say("The person revokes the delegation")
    narrator.vouch("delegate", "revoke", dlg)
    narrator.say("The next exchange is refused (exit code 5: revoked)")
    narrator.vouch("credential", "aws", *agent, expect=5)
    narrator.say("It is listed as revoked, by whom and when (--all: not only active ones)")
    listing = narrator.vouch("delegate", "list", "--all", show=True)
    _expect_row(listing, dlg, "revoked")
    if "revoked (this delegation)" not in listing:
        raise DemoFailed("the listing does not say what was revoked")
    show_aws_cut(narrator, settings, org.aws, dlg, claims)
    # The revoked session still names itself (GetCallerIdentity needs no permission).
    show_usage(narrator, settings, _caller(settings, org.aws, doc), catalog.resolve(MODELS[0]))
    show_budget(
        narrator,
        settings,
        aws=org.aws,
        model=catalog.resolve(MODELS[0]),
        thumbprint=thumbprint,
        token_file=work / "budget.jwt",
        key_file=key_file,
    )


def show_usage(narrator: Narrator, settings: Settings, arn: str, model: str) -> None:
    """Bedrock's records of the agent's calls, and the usage table the broker makes of them."""
    narrator.say(
        "Bedrock logs every call (model invocation logging): the demo writes three records"
        " for the agent's session into the emulator's CloudWatch Logs group, as Bedrock would"
    )
    calls = [(1200, 300), (2500, 800), (900, 150)]
    _write_records(settings, [_record(arn, model, i, o) for i, o in calls])
    print(f"   identity.arn {arn}")
    for tokens_in, tokens_out in calls:
        print(f"   Converse {model}: {tokens_in} input, {tokens_out} output tokens")
    narrator.say("What the person's agents cost: the usage table (rounded; exact under --json)")
    table = narrator.vouch("usage", "--since", "1h", show=True)
    if "TOTAL" not in table or "0.01" not in table:  # 4,600 in + 1,250 out on Haiku: $0.01085
        raise DemoFailed("the usage table does not show the three records")


def show_budget(
    narrator: Narrator,
    settings: Settings,
    *,
    aws: AwsAccount,
    model: str,
    thumbprint: str,
    token_file: Path,
    key_file: Path,
) -> None:
    """A delegation with a small budget, spent past it: revoked by the broker, refused."""
    narrator.say("Delegate again with a budget of $0.05: the grant shows it and the tap signs it")
    narrator.vouch(
        "delegate",
        "--agent",
        "demo",
        "--model",
        MODELS[0],
        "--ttl",
        "1h",
        "--bind-key",
        thumbprint,
        "--budget",
        "0.05",
        "--out",
        str(token_file),
    )
    agent = ("--token-file", str(token_file), "--key-file", str(key_file))
    dlg = _claims(token_file.read_text().strip())["dlg"]
    doc = json.loads(narrator.vouch("credential", "aws", *agent))
    arn = _caller(settings, aws, doc)
    narrator.say(
        "The agent spends past it: two calls of 30,000 input and 1,000 output tokens"
        " ($0.035 each on Haiku), logged by Bedrock"
    )
    _write_records(settings, [_record(arn, model, 30_000, 1_000) for _ in range(2)])
    print(
        f"   (the broker's spend follower reads the log every {settings.spend_poll_interval_s:g} s;"
        " in AWS, Bedrock delivers records minutes after the call)",
        flush=True,
    )
    deadline = time.monotonic() + 30
    while '"budget-exceeded"' not in narrator.quiet("delegate", "list", "--all"):
        if time.monotonic() > deadline:
            raise DemoFailed("the broker did not revoke the delegation for its budget")
        time.sleep(0.5)
    narrator.say("The broker revoked it (reason budget-exceeded): spent $0.07 of $0.05")
    listing = narrator.vouch("delegate", "list", "--all", show=True)
    _expect_row(listing, dlg, "revoked")
    if "spent 0.07 of its 0.05 budget" not in listing or '"budget-exceeded"' not in listing:
        raise DemoFailed("the listing does not show the budget spent")
    narrator.say("The agent's next exchange is refused with budget-exceeded (exit code 5)")
    narrator.vouch("credential", "aws", *agent, expect=5)


def _caller(settings: Settings, aws: AwsAccount, doc: dict[str, Any]) -> str:
    """The ARN AWS names these credentials by: what Bedrock writes as `identity.arn`."""
    sts = boto3.client(
        "sts",
        endpoint_url=settings.aws.endpoint_url,
        region_name=aws.region,
        aws_access_key_id=doc["AccessKeyId"],
        aws_secret_access_key=doc["SecretAccessKey"],
        aws_session_token=doc["SessionToken"],
    )
    return str(sts.get_caller_identity()["Arn"])


def _record(arn: str, model: str, tokens_in: int, tokens_out: int) -> dict[str, Any]:
    """One model invocation log record as Bedrock writes it (text delivery off)."""
    return {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "accountId": arn.split(":")[4],
        "identity": {"arn": arn},
        "region": "us-east-1",
        "requestId": str(uuid.uuid4()),
        "operation": "Converse",
        "modelId": model,
        "input": {"inputContentType": "application/json", "inputTokenCount": tokens_in},
        "output": {"outputContentType": "application/json", "outputTokenCount": tokens_out},
    }


def _write_records(settings: Settings, records: list[dict[str, Any]]) -> None:
    """Put the records on the invocation log stream of the dev stack's log group."""
    logs = boto3.client(
        "logs", endpoint_url=settings.aws.endpoint_url, region_name=settings.aws.region
    )
    group = settings.aws.invocation_log_group
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=STREAM)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=STREAM,
        logEvents=[{"timestamp": now, "message": json.dumps(r)} for r in records],
    )


def show_stolen_copy(narrator: Narrator, settings: Settings, token_file: Path) -> None:
    """A copy of the bound token (a log, a prompt-injected tool) gets nothing without the key."""
    narrator.say("A copy of the token alone (leaked from a log, say) is refused: no key, no proof")
    url = settings.issuer + "/v1/credentials/aws"
    print(
        f'$ curl -s -X POST -H "Authorization: Bearer $(cat {shlex.quote(str(token_file))})" {url}',
        flush=True,
    )
    request = urllib.request.Request(  # noqa: S310 - the demo's own http broker
        url,
        method="POST",
        headers={"Authorization": f"Bearer {token_file.read_text().strip()}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - our own broker
            raise DemoFailed("the broker exchanged a bound token without a proof")
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.loads(exc.read())
    print(f"   HTTP {status} {body['type']}: {body['detail']}", flush=True)
    if (status, body["error"]) != (401, "invalid_dpop_proof"):
        raise DemoFailed(f"a copy of the bound token got {status} {body}")


def show_own_use(narrator: Narrator, settings: Settings, aws: AwsAccount, person: str) -> None:
    """The person uses Bedrock themselves: their own credentials, named in AWS as them."""
    narrator.say(
        "The person uses Bedrock themselves (no agent): the models they may use, then their"
        " own credentials"
    )
    print(_indent(narrator.vouch("models")), flush=True)
    doc = json.loads(narrator.vouch("credential", "aws"))
    print(f"   AccessKeyId {doc['AccessKeyId'][:4]}…  expires {doc['Expiration']}")
    again = json.loads(narrator.vouch("credential", "aws"))
    if again["AccessKeyId"] != doc["AccessKeyId"]:
        raise DemoFailed("the second call exchanged again instead of using the local cache")
    print("   (the same credentials again, from the local cache: a burst of AWS CLI calls")
    print("    with `--profile vouch` exchanges once)")
    sts = boto3.client(
        "sts",
        endpoint_url=settings.aws.endpoint_url,
        region_name=aws.region,
        aws_access_key_id=doc["AccessKeyId"],
        aws_secret_access_key=doc["SecretAccessKey"],
        aws_session_token=doc["SessionToken"],
    )
    arn = sts.get_caller_identity()["Arn"]
    print(f"   aws sts get-caller-identity: {arn}")
    wanted = f"assumed-role/{aws.people_role_name}/user.{person}"
    if not arn.endswith(f":{wanted}"):
        raise DemoFailed(f"own credentials are {arn}, not {wanted}")


def show_aws_cut(
    narrator: Narrator, settings: Settings, aws: AwsAccount, dlg: str, claims: dict[str, Any]
) -> None:
    """What the broker wrote on the agents role, and AWS's verdict on live sessions."""
    iam = boto3.client("iam", endpoint_url=settings.aws.endpoint_url, region_name=aws.region)
    role = aws.role_arn.rsplit("/", 1)[1]
    name = settings.aws.revocation_policy
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    policy = document if isinstance(document, str) else json.dumps(document)
    narrator.say(
        f"AWS is told too: the broker's Deny on the role ({role}, inline policy {name})",
        _indent(json.dumps(json.loads(policy), indent=2)),
    )
    narrator.say("AWS's own evaluation of credentials already handed out")
    issued = aws_time(int(claims["iat"]))
    kept = "dlg_someotherdelegation"
    for which, delegation, want in (
        ("the revoked delegation's session", dlg, Outcome.EXPLICIT_DENY),
        ("another delegation's session", kept, Outcome.ALLOW),
    ):
        context = {
            "aws:PrincipalTag/vouch:Delegation": delegation,
            "aws:PrincipalTag/vouch:User": claims["act"]["sub"],
            "aws:PrincipalTag/vouch:Agent": claims["sub"].split(".", 2)[1],
            "aws:TokenIssueTime": issued,
        }
        model = (
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"
        )
        outcome = evaluate(Request("bedrock:InvokeModel", model, context), [BROAD_ROLE, policy])
        print(f"   bedrock:InvokeModel with {which}: {outcome.outcome.value}")
        if outcome.outcome is not want:
            raise DemoFailed(f"{which}: expected {want.value}, got {outcome.outcome.value}")


def _expect_row(listing: str, dlg: str, state: str) -> None:
    """`delegate list` shows `dlg` in `state` (its row: ID AGENT STATE ...).

    Raises:
        DemoFailed: it does not.
    """
    rows = [line.split() for line in listing.splitlines() if line.startswith(dlg)]
    if [row[2] for row in rows] != [state]:
        raise DemoFailed(f"delegate list does not show {dlg} as {state}")


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _invoke(policy: str, canonical: str, catalog: Catalog, aws: AwsAccount, at: float) -> Outcome:
    entry = catalog.entry(canonical)
    profile = profile_arn(entry, aws.region, aws.account_id)
    now = {"aws:CurrentTime": aws_time(int(at))}  # AWS puts it in every request's context
    on_profile = evaluate(Request("bedrock:InvokeModel", profile, now), [BROAD_ROLE], [policy])
    routed = Request(
        "bedrock:InvokeModel",
        model_arn(aws.region, entry.model_id),
        {"bedrock:InferenceProfileArn": profile, **now},
    )
    on_model = evaluate(routed, [BROAD_ROLE], [policy])
    allowed = on_profile.outcome is Outcome.ALLOW and on_model.outcome is Outcome.ALLOW
    return Outcome.ALLOW if allowed else on_profile.outcome


def run_demo() -> int:
    """Raises: DevError when the stack cannot start."""
    try:
        import vouch_delegate  # noqa: F401, PLC0415 - the demo plays the person with the real CLI
    except ImportError:
        print(
            "vouch-broker demo needs vouch-delegate installed (pip install ./sdk)", file=sys.stderr
        )
        return 6
    with tempfile.TemporaryDirectory(prefix="vouch-demo-") as tmp:
        work = Path(tmp)
        opts = DevOptions(
            work / "state", port=free_port(), redis_port=free_port(), aws_port=free_port()
        )
        env = {
            **os.environ,
            "VOUCH_SERVER": f"http://localhost:{opts.port}",
            "VOUCH_AUTHENTICATOR": f"soft:{work / 'key.json'}",
            "VOUCH_PIN": "123456",
            "XDG_CONFIG_HOME": str(work / "config"),
            "XDG_CACHE_HOME": str(work / "cache"),
            "XDG_STATE_HOME": str(work / "state"),
        }
        with dev_stack(opts) as overrides:
            settings, deprecations = dev_settings(opts, overrides)
            configure("WARNING")  # the story is the output; the broker's logs would bury it
            log_deprecations(deprecations)
            with serving(settings, opts.port):
                try:
                    story(settings, work, Narrator(env))
                except DemoFailed as exc:
                    print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
                    return 1
    print("\nDemo complete: every step did what it should.")
    return 0
