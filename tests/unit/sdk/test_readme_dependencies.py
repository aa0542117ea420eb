"""sdk/README.md names exactly the distributions sdk/pyproject.toml depends on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SDK = Path(__file__).resolve().parents[3] / "sdk"


def test_the_readme_names_every_dependency_and_no_other() -> None:
    readme = " ".join((SDK / "README.md").read_text().split())  # one line per paragraph
    (sentence,) = re.findall(r"`vouch-delegate` depends only on (.+?) \(plus", readme)
    named = set(re.findall(r"`([^`]+)`", sentence))
    project = tomllib.loads((SDK / "pyproject.toml").read_text())["project"]
    required = {re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0] for spec in project["dependencies"]}
    assert named == required
