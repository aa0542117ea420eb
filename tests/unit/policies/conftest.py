"""Shared fixtures for the policies tests: the built-in catalog and the example org policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import Catalog, OrgPolicy, load_org_policy

EXAMPLE = Path(__file__).resolve().parents[3] / "policies" / "examples" / "org.toml"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.builtin()


@pytest.fixture(scope="session")
def example(catalog: Catalog) -> OrgPolicy:
    return load_org_policy(EXAMPLE, catalog)
