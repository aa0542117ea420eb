"""End-to-end fixtures: a broker on real HTTP and the `vouch` CLI run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from vouch_delegate.authenticators import DEFAULT_PIN

from tests.harness.broker import BrokerServer, make_invite, private_broker
from tests.harness.services import MotoServer

HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
_SCRIPT = Path(sys.executable).with_name("vouch")
VOUCH = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "vouch_delegate.cli"]


# Without these keyring resolves as on a headless machine, whatever desktop runs the tests,
# so no test touches a real keyring.
KEYRING_SETTINGS = ("DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND")


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment without any VOUCH_*, AWS_* or keyring setting, rooted at
    `home`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOUCH_", "AWS_")) and k not in KEYRING_SETTINGS
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


class Cli:
    """One person at their terminal: own HOME, config dir and software key file."""

    def __init__(self, broker: BrokerServer, home: Path, email: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.broker = broker
        self.home = home
        self.email = email
        self.key_file = home / "key.json"
        self.env = clean_env(home)
        self.env.update(VOUCH_PIN=DEFAULT_PIN, VOUCH_AUTHENTICATOR=f"soft:{self.key_file}")

    @property
    def session_file(self) -> Path:
        return self.home / ".config" / "vouch" / "session.json"

    def run(
        self,
        *args: str,
        code: int = 0,
        extra_env: dict[str, str] | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `vouch ARGS` (with `stdin` as its input); fail unless it exits with `code`."""
        proc = subprocess.run(
            [*VOUCH, *args],
            input=stdin if stdin is not None else "",
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == code, (
            f"vouch {' '.join(args)} exited {proc.returncode}, wanted {code}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
        return proc

    def delegate(self, out: Path, *models: str, agent: str = "researcher") -> Path:
        """A fresh agent token for `models`, written to `out`."""
        flags = [arg for model in models for arg in ("--model", model)]
        self.run("delegate", "--agent", agent, *flags, "--ttl", "1h", "--out", str(out))
        return out


@pytest.fixture(scope="package")
def e2e_broker(
    tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer
) -> Iterator[BrokerServer]:
    # One broker for the package, every test from 127.0.0.1: the per-address caps on pending
    # requests would count other tests' requests (their limits are tested in integration/).
    with private_broker(
        tmp_path_factory.mktemp("e2e"),
        moto_server.url,
        rate_requests_per_min=1000,
        request_max_pending_per_address=100,
    ) as server:
        yield server


@pytest.fixture(scope="package")
def person(
    e2e_broker: BrokerServer, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Cli]:
    """`person(email)`: enrolled and signed in through the CLI itself, once per worker."""
    people: dict[str, Cli] = {}
    root = tmp_path_factory.mktemp("people")

    def get(email: str = "alice@example.com") -> Cli:
        if email not in people:
            cli = Cli(e2e_broker, root / email, email)
            code = make_invite(e2e_broker.settings, email)
            enroll = ("enroll", "--server", e2e_broker.url, "--email", email, "--code-file", "-")
            cli.run(*enroll, stdin=code + "\n")
            cli.run("login")
            people[email] = cli
        return people[email]

    return get
