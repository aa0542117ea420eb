"""`vouch-broker demo` (make demo): a transcript a reader can follow and paste from."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import clean_env
from tests.e2e.test_dev import BROKER

pytestmark = pytest.mark.e2e


def test_the_demo_prints_commands_as_typed_and_the_listings_it_checks(tmp_path: Path) -> None:
    done = subprocess.run(
        [*BROKER, "demo"],
        env=clean_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, f"{out}\n{done.stderr}"
    assert out.rstrip().endswith("Demo complete: every step did what it should.")
    commands = [shlex.split(line[2:]) for line in out.splitlines() if line.startswith("$ ")]
    delegate = next(c for c in commands if c[:2] == ["vouch", "delegate"] and "--agent" in c)
    assert delegate[delegate.index("--purpose") + 1] == "vouch demo"  # one argument, quoted
    assert "--purpose 'vouch demo' --out " in out
    # Each listing under its step: the header row, then the delegation in its state.
    # Two delegations: the one the person revokes, then the one with a budget.
    dlg, budgeted = dict.fromkeys(re.findall(r"dlg_[A-Za-z0-9_-]{16}", out))
    steps = dict(re.findall(r"\n== \d+\. ([^\n]+)\n(.*?)(?=\n\n== |\n\nDemo complete)", out, re.S))
    active = steps["The person's delegations: the agent's is active"].splitlines()
    assert active[0] == "$ vouch delegate list"
    assert active[1].split() == ["ID", "AGENT", "STATE", "UNTIL", "MODELS"]
    assert active[2].split()[:3] == [dlg, "demo", "active"]
    assert len(active) == 3
    revoked = steps[
        "It is listed as revoked, by whom and when (--all: not only active ones)"
    ].splitlines()
    assert revoked[0] == "$ vouch delegate list --all"
    assert revoked[2].split()[:3] == [dlg, "demo", "revoked"]
    assert re.fullmatch(
        r" +revoked \(this delegation\) at [0-9-]+ [0-9:]+ by admin@example\.com: "
        r'"revoked by user"',
        revoked[3],
    )
    # Bedrock's records for the agent's session, priced in the usage table.
    usage = steps[
        "What the person's agents cost: the usage table (rounded; exact under --json)"
    ].splitlines()
    assert usage[0] == "$ vouch usage --since 1h"
    assert usage[3].split() == [dlg, "demo", "3", "4600", "1250", "0", "0", "0.010850", "0"]
    # The budget: signed in the grant, spent past, revoked by the broker, refused.
    grant = steps["Delegate again with a budget of $0.05: the grant shows it and the tap signs it"]
    assert "--budget 0.05 --out " in grant
    assert "\n     budget:   0.05 (revoked once spent)\n" in grant
    spent = steps["The broker revoked it (reason budget-exceeded): spent $0.07 of $0.05"]
    rows = spent.splitlines()
    at = next(i for i, row in enumerate(rows) if row.split()[:1] == [budgeted])
    assert rows[at].split()[:3] == [budgeted, "demo", "revoked"]
    assert rows[at + 1].strip() == "spent 0.07 of its 0.05 budget"
    assert re.fullmatch(
        r' +revoked \(this delegation\) at [0-9-]+ [0-9:]+ by vouch-broker: "budget-exceeded"',
        rows[at + 2],
    )
    refused = steps[
        "The agent's next exchange is refused with budget-exceeded (exit code 5)"
    ].splitlines()
    assert refused[1:] == [
        "   vouch: delegation revoked: it spent 0.07 of its 0.05 budget",
        "   vouch: budget spent: 0.07 of 0.05; this delegation is revoked, ask its person for a"
        " new one",
    ]
