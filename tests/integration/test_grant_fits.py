"""A grant whose session policy could never fit STS's 2,048 characters is refused before the
person taps for it, not at every exchange afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from vouch_delegate import GrantInvalid

from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.people import signed_in

pytestmark = pytest.mark.integration

POLICY = """
admins = ["admin@example.com"]
require_user_verification = true

[aws]
account_id = "123456789012"
role_arn = "arn:aws:iam::123456789012:role/vouch-agents"
region = "us-east-1"

[[rules]]
people = ["*@example.com"]
models = ["us.claude-haiku-4-5", "us.claude-sonnet-4-5", "us.claude-opus-4-5"]
max_ttl = "8h"
"""


def test_a_grant_too_large_for_sts_is_refused_before_the_tap(
    tmp_path: Path, redis_url: str
) -> None:
    policy = tmp_path / "org.toml"
    policy.write_text(POLICY)
    server = BrokerServer(broker_settings(tmp_path, redis_url, policy_file=str(policy))).start()
    try:
        alice = signed_in(server, "alice@example.com", tmp_path / "alice.key.json")
        everything = ["us.claude-haiku-4-5", "us.claude-sonnet-4-5", "us.claude-opus-4-5"]
        with pytest.raises(GrantInvalid) as caught:
            alice.broker.delegation_begin(agent="researcher", models=everything, ttl_s=3600)
        assert "over the 2048 limit" in caught.value.detail
        assert caught.value.problem.get("reason") == "session-policy-too-large"
        # Two of them fit, and are delegated as usual.
        done = alice.delegate("researcher", everything[:2])
        assert done.token
    finally:
        server.stop()
