"""The vendored Swagger UI is the release its README names, byte for byte."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

import broker

pytestmark = pytest.mark.unit

VENDOR = Path(broker.__file__).parent / "swagger_ui"


def test_vendored_files_match_the_digests_in_their_readme() -> None:
    readme = (VENDOR / "README.md").read_text()
    listed = dict(re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", readme, re.MULTILINE))
    assert set(listed) == {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-ui-bundle.js.LICENSE.txt",
        "LICENSE",
        "NOTICE",
    }
    actual = {name: hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() for name in listed}
    assert actual == listed
    # Everything in the folder is accounted for: the vendored files, the README, our starter.
    assert {p.name for p in VENDOR.iterdir()} == {*listed, "README.md", "viewer.js"}
