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


@dataclass(frozen=True)
class AwsPlan:
    provider_url: str
    client_ids: tuple[str, ...]
    role_name: str
    role_arn: str
    max_session_s: int
    trust_policy: str
    permissions_policy: str

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
    return done


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
