"""Both wheels carry the licence and the metadata an index and a reviewer expect."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv not found: run the tests with `make test` (it installs uv if missing)"
    out = tmp_path_factory.mktemp("dist")
    for project in (ROOT, ROOT / "sdk"):
        subprocess.run(
            [uv, "build", "--wheel", "--quiet", "-o", str(out), str(project)],
            check=True,
            capture_output=True,
            timeout=180,
        )
    return {w.name.split("-")[0]: w for w in out.glob("*.whl")}


@pytest.mark.parametrize("name", ["vouch_broker", "vouch_delegate"])
def test_wheel_carries_the_licence_and_full_metadata(wheels: dict[str, Path], name: str) -> None:
    with zipfile.ZipFile(wheels[name]) as wheel:
        info = f"{name}-0.1.0.dist-info"
        assert wheel.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        meta = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["License-File"] == "LICENSE"
    assert meta["Author"] == "The Vouch authors"
    assert meta["Summary"] and meta["Keywords"] and "fido2" in meta["Keywords"]
    classifiers = meta.get_all("Classifier") or []
    assert "Topic :: Security" in classifiers and "Typing :: Typed" in classifiers
    assert meta["Description-Content-Type"] == "text/markdown"


def test_twine_check_passes_on_both_wheels(wheels: dict[str, Path]) -> None:
    found = shutil.which("twine")
    assert found, "twine is a dev dependency: run the tests with `make test`"
    answer = subprocess.run(
        [found, "check", "--strict", *map(str, wheels.values())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert answer.stdout.count("PASSED") == 2
