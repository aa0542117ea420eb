"""What AWS needs for this broker: the IAM OIDC provider, the role trust and permissions.

`plan` computes the documents (pure); `apply` creates or updates them through boto3 and is
idempotent, so `vouch-broker aws-setup --apply` can be re-run after a policy change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from broker.settings import Settings
from policies import Catalog, OrgPolicy, role_permissions_policy, trust_policy

PERMISSIONS_POLICY_NAME = "vouch-bedrock-models"
BOUNDARY_POLICY_NAME = "vouch-agents-boundary"
BROKER_POLICY_NAME = "vouch-broker-revocations"
BOUNDED_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")


def _compact(document: dict[str, object]) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def boundary_policy() -> str:
    """The agents role's permissions boundary: whatever any inline policy says (a broker
    writing revocations included), the role can never do more than invoke Bedrock models."""
    return _compact(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(BOUNDED_ACTIONS), "Resource": "*"}],
        }
    )


def broker_policy(role_arn: str) -> str:
    """The broker's own least privilege: read, write and delete inline policies of the
    agents role only (the revocation policy), nothing else in IAM."""
    return _compact(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "VouchRevocationsOnTheAgentsRole",
                    "Effect": "Allow",
                    "Action": ["iam:DeleteRolePolicy", "iam:GetRolePolicy", "iam:PutRolePolicy"],
                    "Resource": role_arn,
                }
            ],
        }
    )


@dataclass(frozen=True)
class AwsPlan:
    provider_url: str
    client_ids: tuple[str, ...]
    role_name: str
    role_arn: str
    max_session_s: int
    trust_policy: str
    permissions_policy: str
    account_id: str

    @property
    def boundary_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:policy/{BOUNDARY_POLICY_NAME}"

    def describe(self) -> dict[str, Any]:
        return {
            "oidc_provider": {"url": self.provider_url, "client_ids": list(self.client_ids)},
            "role": {
                "name": self.role_name,
                "arn": self.role_arn,
                "max_session_duration": self.max_session_s,
                "trust_policy": json.loads(self.trust_policy),
                "permissions_policy": {
                    "name": PERMISSIONS_POLICY_NAME,
                    "document": json.loads(self.permissions_policy),
                },
                "permissions_boundary": {
                    "name": BOUNDARY_POLICY_NAME,
                    "document": json.loads(boundary_policy()),
                },
            },
            "broker_policy": {
                "name": BROKER_POLICY_NAME,
                "attach_to": "the broker's own AWS principal (its instance, task or user role)",
                "document": json.loads(broker_policy(self.role_arn)),
            },
        }


def plan(settings: Settings, org: OrgPolicy, catalog: Catalog) -> AwsPlan:
    """The provider, trust policy and permissions this configuration needs.

    Raises:
        SessionPolicyError: the issuer cannot be an IAM OIDC provider (https, no port), unless
            a local STS emulator is configured, where http://localhost is accepted.
    """
    local = settings.aws.endpoint_url is not None
    return AwsPlan(
        provider_url=settings.issuer.rstrip("/"),
        client_ids=(org.aws.sts_audience,),
        role_name=org.aws.role_arn.rsplit("/", 1)[1],
        role_arn=org.aws.role_arn,
        max_session_s=org.aws.role_max_session_s,
        trust_policy=trust_policy(
            issuer=settings.issuer,
            account_id=org.aws.account_id,
            audience=org.aws.sts_audience,
            allow_local_http=local,
        ),
        permissions_policy=role_permissions_policy(
            org.allowed_models, catalog, region=org.aws.region, account_id=org.aws.account_id
        ),
        account_id=org.aws.account_id,
    )


def apply(aws_plan: AwsPlan, iam: Any) -> list[str]:
    """Create or update the provider and role; returns what was done, one line each."""
    done = [_ensure_provider(aws_plan, iam)]
    try:
        iam.get_role(RoleName=aws_plan.role_name)
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(
            RoleName=aws_plan.role_name,
            AssumeRolePolicyDocument=aws_plan.trust_policy,
            MaxSessionDuration=aws_plan.max_session_s,
            Description="Vouch: agents' scoped Bedrock access",
        )
        done.append(f"created role {aws_plan.role_name}")
    else:
        iam.update_assume_role_policy(
            RoleName=aws_plan.role_name, PolicyDocument=aws_plan.trust_policy
        )
        iam.update_role(RoleName=aws_plan.role_name, MaxSessionDuration=aws_plan.max_session_s)
        done.append(f"updated role {aws_plan.role_name} trust policy and max session")
    iam.put_role_policy(
        RoleName=aws_plan.role_name,
        PolicyName=PERMISSIONS_POLICY_NAME,
        PolicyDocument=aws_plan.permissions_policy,
    )
    done.append(f"put inline policy {PERMISSIONS_POLICY_NAME} on {aws_plan.role_name}")
    boundary = _ensure_managed(iam, BOUNDARY_POLICY_NAME, boundary_policy(), aws_plan.account_id)
    iam.put_role_permissions_boundary(RoleName=aws_plan.role_name, PermissionsBoundary=boundary)
    done.append(f"set permissions boundary {BOUNDARY_POLICY_NAME} on {aws_plan.role_name}")
    broker = _ensure_managed(
        iam, BROKER_POLICY_NAME, broker_policy(aws_plan.role_arn), aws_plan.account_id
    )
    done.append(f"managed policy {broker} ready: attach it to the broker's own AWS principal")
    return done


def _ensure_managed(iam: Any, name: str, document: str, account_id: str) -> str:
    """Create the managed policy, or make `document` its default version; returns its ARN."""
    arn = f"arn:aws:iam::{account_id}:policy/{name}"
    try:
        iam.get_policy(PolicyArn=arn)
    except iam.exceptions.NoSuchEntityException:
        iam.create_policy(PolicyName=name, PolicyDocument=document)
        return arn
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    old = sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
    if len(versions) >= 5:  # IAM keeps five versions of a managed policy
        iam.delete_policy_version(PolicyArn=arn, VersionId=old[0]["VersionId"])
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=document, SetAsDefault=True)
    return arn


def _ensure_provider(aws_plan: AwsPlan, iam: Any) -> str:
    host_path = urlsplit(aws_plan.provider_url)
    wanted = f"{host_path.netloc}{host_path.path}"
    for entry in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        arn = entry["Arn"]
        if arn.endswith(f":oidc-provider/{wanted}"):
            current = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
            for client_id in set(aws_plan.client_ids) - set(current.get("ClientIDList", [])):
                iam.add_client_id_to_open_id_connect_provider(
                    OpenIDConnectProviderArn=arn, ClientID=client_id
                )
            return f"OIDC provider {wanted} present"
    iam.create_open_id_connect_provider(
        Url=aws_plan.provider_url, ClientIDList=list(aws_plan.client_ids)
    )
    return f"created OIDC provider {wanted}"
