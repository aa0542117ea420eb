"""The vouch-broker wheel is the product only: dev tooling and its dependencies stay home."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def run(
    *args: str | Path, code: int = 0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=180, check=False, cwd=cwd
    )
    assert proc.returncode == code, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_the_wheel_holds_broker_and_policies_and_dev_commands_point_to_a_checkout(
    tmp_path: Path,
) -> None:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv not found: run the tests with `make test` (it installs uv if missing)"
    run(uv, "build", "--quiet", "--wheel", "--out-dir", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("vouch_broker-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("/METADATA"))).decode()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"broker", "policies"}
    assert "policies/examples/org.toml" in names  # the default policy_file
    # The /schema viewer's files, with the licences of what they bundle.
    for vendored in ("swagger-ui-bundle.js", "swagger-ui.css", "viewer.js", "LICENSE", "NOTICE"):
        assert f"broker/swagger_ui/{vendored}" in names
    for absent in ("broker/dev.py", "broker/demo.py", "broker/config_reference.py"):
        assert absent not in names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and not [r for r in requires if "moto" in r or "vouch-delegate" in r]

    venv = tmp_path / "venv"
    run(uv, "venv", "--quiet", "--python", sys.executable, venv)
    run(uv, "pip", "install", "--quiet", "--python", venv / "bin" / "python", wheel)
    broker = venv / "bin" / "vouch-broker"
    for command, target in (("dev", "run"), ("demo", "demo")):
        done = run(broker, command, code=1, cwd=tmp_path)
        assert done.stderr == (
            f"vouch-broker {command}: development tooling, not part of this installation; "
            f"run it from a source checkout of vouch (`make {target}`)\n"
        )
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    example = site / "site-packages" / "policies" / "examples" / "org.toml"
    checked = run(broker, "policy", "check", example, cwd=tmp_path).stdout
    assert "ok (1 rules, 2 models; own use: 1 rules, 2 models)" in checked
