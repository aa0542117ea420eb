"""vouch-delegate installs alone: agents get boto3, fido2, keyring and msgspec, never the
broker's server stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SDK_DIR = Path(__file__).resolve().parents[2] / "sdk"
# msgspec is shared: the SDK decodes the broker's answers with it (no dependencies itself).
SERVER_STACK = {"litestar", "redis", "uvicorn", "vouch-broker", "prometheus-client"}


def run(*args: str | Path) -> str:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, f"{args} failed\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_sdk_alone_in_a_fresh_venv_pulls_no_server_stack(tmp_path: Path) -> None:
    # `uv run` (how make test runs pytest) names itself in $UV; CI installs uv, so a missing
    # uv is a broken setup to report, not a reason to skip.
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv not found: run the tests with `make test` (it installs uv if missing)"
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    run(uv, "venv", "--quiet", "--python", sys.executable, venv)
    run(uv, "pip", "install", "--quiet", "--python", python, SDK_DIR)
    listed = json.loads(run(uv, "pip", "list", "--python", python, "--format", "json"))
    names = {entry["name"].lower() for entry in listed}
    assert {"vouch-delegate", "boto3", "fido2", "keyring", "msgspec"} <= names
    assert not names & SERVER_STACK
    assert "vouch delegate" in run(venv / "bin" / "vouch", "--help")
    imported = run(
        python,
        "-c",
        "import sys, vouch_delegate, vouch_delegate.cli, vouch_delegate._boto; "
        "print(sorted(m for m in ('litestar', 'redis', 'broker') if m in sys.modules))",
    )
    assert imported.strip() == "[]"
