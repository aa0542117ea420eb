"""Register an issuer as an IAM OIDC provider and a role that trusts it, in moto."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import boto3

from tests.harness.services import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

TRUST_ACTIONS = ("sts:AssumeRoleWithWebIdentity", "sts:TagSession", "sts:SetSourceIdentity")
AGENT_SUBJECTS = "agent.*"
"""What the agents role trusts (`agent.<name>.<email>`)."""
PEOPLE_SUBJECTS = "user.*"
"""What the people role trusts (`user.<email>`): AWS, evaluating each role's trust policy,
admits each kind of sub at its own role only; the gate does the same (sts_trust.py)."""


def provider_key(issuer: str) -> str:
    """The IAM name of an issuer's OIDC provider: the URL without scheme or trailing slash."""
    return issuer.split("://", 1)[-1].rstrip("/")


def moto_client(moto: MotoServer, service: str, region: str = "us-east-1") -> Any:
    """A boto3 client for moto with dummy credentials."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=moto.url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def trust_policy(
    provider_arn: str,
    issuer: str,
    *,
    audience: str = "sts.amazonaws.com",
    sub_pattern: str = AGENT_SUBJECTS,
    actions: Sequence[str] = TRUST_ACTIONS,
) -> dict[str, Any]:
    """The role trust policy the broker's aws-setup is expected to produce."""
    key = provider_key(issuer)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": list(actions),
                "Condition": {
                    "StringEquals": {f"{key}:aud": audience},
                    "StringLike": {f"{key}:sub": sub_pattern},
                },
            }
        ],
    }


def setup_provider_and_role(
    iam: IAMClient,
    issuer: str,
    audience: str = "sts.amazonaws.com",
    role_name: str = "vouch-agents",
    max_session_s: int = 3600,
    sub_pattern: str = AGENT_SUBJECTS,
    actions: Sequence[str] = TRUST_ACTIONS,
) -> str:
    """Register the issuer as an OIDC provider and a role trusting it in moto; the role ARN.

    Idempotent: an existing provider gains the audience, an existing role is updated.
    """
    provider_arn = _ensure_provider(iam, issuer, audience)
    document = trust_policy(
        provider_arn, issuer, audience=audience, sub_pattern=sub_pattern, actions=actions
    )
    text = json.dumps(document)
    try:
        role = iam.create_role(
            RoleName=role_name, AssumeRolePolicyDocument=text, MaxSessionDuration=max_session_s
        )["Role"]
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=text)
        iam.update_role(RoleName=role_name, MaxSessionDuration=max_session_s)
        role = iam.get_role(RoleName=role_name)["Role"]
    return role["Arn"]


def setup_roles(
    iam: IAMClient, issuer: str, audience: str = "sts.amazonaws.com", max_session_s: int = 3600
) -> tuple[str, str]:
    """The agents role (`agent.*` subs) and the people role (`user.*` subs) trusting the
    issuer, as `aws-setup` makes them: (agents role ARN, people role ARN)."""
    agents = setup_provider_and_role(iam, issuer, audience, "vouch-agents", max_session_s)
    people = setup_provider_and_role(
        iam, issuer, audience, "vouch-people", max_session_s, sub_pattern=PEOPLE_SUBJECTS
    )
    return agents, people


def _ensure_provider(iam: IAMClient, issuer: str, audience: str) -> str:
    suffix = f":oidc-provider/{provider_key(issuer)}"
    for entry in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        arn = entry.get("Arn", "")
        if arn.endswith(suffix):
            found = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
            if audience not in found.get("ClientIDList", []):
                iam.add_client_id_to_open_id_connect_provider(
                    OpenIDConnectProviderArn=arn, ClientID=audience
                )
            return arn
    created = iam.create_open_id_connect_provider(Url=issuer, ClientIDList=[audience])
    return created["OpenIDConnectProviderArn"]
