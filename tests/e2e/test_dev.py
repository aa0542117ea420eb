"""`vouch-broker dev` (make run): its own redis-server and AWS emulator, stopped by Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import redis

from tests.e2e.conftest import clean_env
from tests.harness.services import free_port, wait_for

pytestmark = pytest.mark.e2e

_SCRIPT = Path(sys.executable).with_name("vouch-broker")
BROKER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "broker.cli"]


def test_dev_serves_logs_a_deprecated_setting_once_and_stops_its_children(
    tmp_path: Path,
) -> None:
    port, redis_port, aws_port = free_port(), free_port(), free_port()
    env = {**clean_env(tmp_path), "VOUCH_STS_TIMEOUT_S": "2"}
    log = tmp_path / "dev.log"
    args = ["--port", port, "--redis-port", redis_port, "--aws-port", aws_port]
    with log.open("w") as out:
        proc = subprocess.Popen(  # from elsewhere than the checkout, as `make run` need not be
            [*BROKER, "dev", "--state-dir", str(tmp_path / "state"), *map(str, args)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = f"http://127.0.0.1:{port}/readyz"
        wait_for(lambda: urllib.request.urlopen(ready, timeout=1).status == 200, 90, "vouch dev")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text
    assert f"  aws:   http://127.0.0.1:{aws_port}\n" in text
    # Commands that work as printed: the venv's bin is not on PATH, so absolute paths.
    bin_dir = Path(sys.executable).parent
    assert f"\n  {bin_dir / 'vouch'} login\n" in text
    own = f"{bin_dir / 'vouch'} aws-profile --endpoint-url http://127.0.0.1:{aws_port}"
    assert f"\n  {own}        # your own credentials: profile vouch\n" in text
    assert f"\n  {bin_dir / 'aws'} sts get-caller-identity --profile vouch\n" in text
    profile = f"{bin_dir / 'vouch'} aws-profile agent --token-file agent.jwt"
    assert f"\n  {profile} --endpoint-url http://127.0.0.1:{aws_port}\n" in text
    assert f"\n  {bin_dir / 'aws'} sts get-caller-identity --profile agent\n" in text
    warnings = [json.loads(line) for line in text.splitlines() if '"vouch.settings"' in line]
    assert [(w["level"], w["msg"]) for w in warnings] == [
        ("warning", "VOUCH_STS_TIMEOUT_S is deprecated: set VOUCH_AWS_STS_TIMEOUT_S instead")
    ]
    assert text.rstrip().endswith("vouch dev stack stopped.")
    for child_port in (redis_port, aws_port):  # redis-server and moto are gone
        wait_for(lambda p=child_port: _closed(p), 10, f"port {child_port} closed")


def test_sigterm_stops_the_dev_stack_and_its_children_as_ctrl_c_does(tmp_path: Path) -> None:
    """`kill PID` (systemd, docker, a supervisor) used to leave the AWS emulator running:
    uvicorn re-raises the signal after its graceful shutdown, which killed the process before
    it stopped its children."""
    port, redis_port, aws_port = free_port(), free_port(), free_port()
    args = ["--port", port, "--redis-port", redis_port, "--aws-port", aws_port]
    proc, log = _start(tmp_path, "dev", "--state-dir", str(tmp_path / "state"), *map(str, args))
    try:
        ready = f"http://127.0.0.1:{port}/readyz"
        wait_for(lambda: urllib.request.urlopen(ready, timeout=1).status == 200, 90, "vouch dev")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text
    assert text.rstrip().endswith("vouch dev stack stopped.")
    for child_port in (redis_port, aws_port):
        wait_for(lambda p=child_port: _closed(p), 10, f"port {child_port} closed")


def test_dev_real_aws_refuses_an_issuer_aws_cannot_fetch_and_says_how_to_set_one(
    tmp_path: Path,
) -> None:
    port, state = free_port(), tmp_path / "state"
    args = ["dev", "--real-aws", "--port", str(port), "--state-dir", str(state)]
    refused = subprocess.run(
        [*BROKER, *args],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 6, refused.stderr  # settings: the documented exit code
    assert refused.stdout == ""
    assert refused.stderr == (
        "invalid configuration:\n"
        f"  - issuer: --real-aws needs an issuer AWS can fetch, not http://localhost:{port}: "
        f"STS reads http://localhost:{port}/.well-known/openid-configuration and the JWKS it "
        "names from the internet, so the issuer must be a public https URL without port. "
        f"Serve this broker there (a tunnel or reverse proxy to 127.0.0.1:{port}), start with "
        'VOUCH_ISSUER=https://YOUR-HOST make run ARGS="--real-aws", then create the IAM '
        "provider and role for it with vouch-broker aws-setup (docs/aws-setup.md)\n"
    )
    assert not state.exists()  # refused before anything started
    # A public https issuer: the stack starts against real AWS (nothing here calls it).
    env = {**clean_env(tmp_path), "VOUCH_ISSUER": "https://vouch.example.com"}
    log = tmp_path / "dev.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*BROKER, *args], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        ready = f"http://127.0.0.1:{port}/readyz"
        wait_for(lambda: urllib.request.urlopen(ready, timeout=1).status == 200, 90, "vouch dev")
    finally:
        _stop(proc)
    text = log.read_text()
    assert "Vouch broker (development) at https://vouch.example.com\n" in text
    assert (
        "  aws:   real AWS (your credentials); IAM trusts this issuer once you ran "
        "vouch-broker aws-setup --apply with it (docs/aws-setup.md)\n"
    ) in text


def _closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _raw_ping(port: int) -> bytes:
    """What Redis answers a client that sends PING without authenticating."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(256)


def _modes(root: Path) -> dict[str, str]:
    """Every path under `root` (itself included) with its permission bits, in octal."""
    paths = [root, *sorted(root.rglob("*"))]
    return {str(p.relative_to(root.parent)): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths}


def test_dev_state_is_private_and_its_redis_refuses_clients_without_the_password(
    tmp_path: Path,
) -> None:
    port, redis_port, aws_port = free_port(), free_port(), free_port()
    state = tmp_path / "state"
    log = state / "redis" / "redis.log"  # as an older `vouch-broker dev` left them
    log.parent.mkdir(parents=True)
    log.write_text("")
    for path, mode in ((state, 0o755), (log.parent, 0o755), (log, 0o644)):
        path.chmod(mode)
    args = ["--port", port, "--redis-port", redis_port, "--aws-port", aws_port]
    with (tmp_path / "dev.log").open("w") as out:
        proc = subprocess.Popen(
            [*BROKER, "dev", "--state-dir", str(state), *map(str, args)],
            env=clean_env(tmp_path),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = f"http://127.0.0.1:{port}/readyz"  # the broker itself gets through
        wait_for(lambda: urllib.request.urlopen(ready, timeout=1).status == 200, 90, "vouch dev")
        modes = _modes(state)
        assert _raw_ping(redis_port) == b"-NOAUTH Authentication required.\r\n"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=redis_port).ping()
        password = (state / "redis" / "password").read_text().strip()
        with pytest.raises(redis.AuthenticationError, match="invalid username-password"):
            redis.Redis(port=redis_port, password="guess").ping()
        client = redis.Redis(port=redis_port, password=password)
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
        client.close()
        command_lines = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline")]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert len(password) >= 32
    assert not any(password.encode() in line for line in command_lines)  # not seen by `ps`
    files = {path: mode for path, mode in modes.items() if not (tmp_path / path).is_dir()}
    dirs = {path: mode for path, mode in modes.items() if (tmp_path / path).is_dir()}
    assert any(path.endswith(".aof") for path in files), modes
    assert set(files.values()) == {"0o600"}, files
    assert set(dirs.values()) == {"0o700"}, dirs


def _start(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*BROKER, "dev", *args],
            env=clean_env(tmp_path),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_a_second_stack_gets_free_ports_and_its_own_state_dir_or_is_told_how(
    tmp_path: Path,
) -> None:
    first_port, second_port = free_port(), free_port()
    state = str(tmp_path / "state")
    first, first_log = _start(tmp_path, "first", "--state-dir", state, "--port", str(first_port))
    try:
        ready = f"http://127.0.0.1:{first_port}/readyz"
        wait_for(lambda: urllib.request.urlopen(ready, timeout=1).status == 200, 90, "first")
        redis_port = int(first_log.read_text().split("@127.0.0.1:")[1].split("/")[0])
        # The same state dir: refused before anything starts, with the fix.
        shared, shared_log = _start(
            tmp_path, "shared", "--state-dir", state, "--port", str(second_port)
        )
        assert shared.wait(timeout=60) == 1
        refused = shared_log.read_text()
        assert f"vouch-broker dev: {state} is in use by another vouch-broker dev (pid " in refused
        assert 'give this stack its own: make run ARGS="--port ' in refused
        # Every taken port at once, each with the option that moves it.
        clash = ("--port", str(first_port), "--redis-port", str(redis_port))
        clashing, clash_log = _start(tmp_path, "clash", "--state-dir", state + "-2", *clash)
        assert clashing.wait(timeout=60) == 1
        both = clash_log.read_text()
        assert (
            f"port {first_port} for the broker is taken (pass --port PORT); port {redis_port} "
            "for redis-server is taken (pass --redis-port PORT); stop what uses them" in both
        )
        assert 'make run ARGS="--port ' in both and " --redis-port " in both
        # Its own state dir and broker port: Redis and the emulator find free ports.
        second, second_log = _start(
            tmp_path, "second", "--state-dir", state + "-2", "--port", str(second_port)
        )
        try:
            ready = f"http://127.0.0.1:{second_port}/readyz"
            wait_for(lambda: urllib.request.urlopen(ready, timeout=1).status == 200, 90, "second")
            text = second_log.read_text()
            assert int(text.split("@127.0.0.1:")[1].split("/")[0]) != redis_port
            first_aws = first_log.read_text().split("  aws:   ")[1].split("\n")[0]
            assert text.split("  aws:   ")[1].split("\n")[0] != first_aws
        finally:
            _stop(second)
    finally:
        _stop(first)


def test_make_run_passes_args_through() -> None:
    repository = Path(__file__).resolve().parents[2]
    # Under `make test` this is a nested make: without the parent's flags and with
    # --no-print-directory it prints only the commands it would run.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", "ARGS=--port 8081 --state-dir .vouch-dev-2"],
        cwd=repository,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env=env,
    )
    assert dry.stdout.splitlines()[-1].endswith(
        "run vouch-broker dev --port 8081 --state-dir .vouch-dev-2"
    )
